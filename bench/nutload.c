/*
 * nutload: a small load generator for NUT network servers (upsd).
 *
 * Written for nutapp's bench/ so that the client side of a measurement costs
 * far less than the server it measures: one thread, non-blocking sockets and
 * epoll, no allocation in the request loop. It speaks only the few requests
 * the benchmark needs and connects only to the address it is given (the
 * runner passes loopback addresses).
 *
 *   nutload get  HOST PORT UPS VAR CONNS DEPTH SECONDS WARMUP
 *       CONNS persistent connections each keep DEPTH `GET VAR UPS VAR`
 *       requests in flight (1 = request-response, more = pipelined) for
 *       WARMUP + SECONDS; replies completed during SECONDS are counted.
 *       Prints: requests= seconds= rps= errors= cpu=
 *
 *   nutload list HOST PORT UPS COUNT
 *       One persistent connection sends `LIST VAR UPS` COUNT times, each
 *       after the previous reply ended, and times every round trip.
 *       Prints: lists= bytes= min_us= median_us= mean_us= p90_us= max_us=
 *
 *   nutload idle HOST PORT CONNS
 *       Opens CONNS connections, has each answer one `VER` (so the server
 *       has set up a session for it), prints `ready N`, then holds them
 *       open until its standard input reaches end of file.
 *
 * cpu= is this process's user+system CPU time divided by the measured wall
 * time: well below 1.0 means the generator was waiting on the server.
 *
 * With NUTLOAD_SPIN set in the environment, `get` polls its sockets without
 * ever sleeping (epoll_wait with a zero timeout), so no reply has to wake
 * it: a check of how much of a figure is the generator's wake-ups.
 */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_DEPTH 256
#define RBUF 65536

struct conn {
	int fd;
	int inflight;		/* requests sent, reply not yet complete */
	int at_line_start;	/* next byte read starts a reply line */
};

static void die(const char *what)
{
	fprintf(stderr, "nutload: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: nutload get HOST PORT UPS VAR CONNS DEPTH SECONDS WARMUP\n"
		"       nutload list HOST PORT UPS COUNT\n"
		"       nutload idle HOST PORT CONNS\n");
	exit(2);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* A blocking TCP connection to a literal IPv4 or IPv6 address. */
static int connect_to(const char *host, int port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1;

	memset(&ss, 0, sizeof(ss));
	if (strchr(host, ':')) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

		a->sin6_family = AF_INET6;
		a->sin6_port = htons(port);
		if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
			usage();
		len = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;

		a->sin_family = AF_INET;
		a->sin_port = htons(port);
		if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
			usage();
		len = sizeof(*a);
	}
	fd = socket(ss.ss_family, SOCK_STREAM, 0);
	if (fd < 0)
		die("socket");
	if (connect(fd, (struct sockaddr *)&ss, len) < 0)
		die("connect");
	/* Requests leave at once; the server's own segmenting is what we see. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static void write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				/* Only in the pipelined loop, and never seen with
				 * the small depths used: wait for room. */
				usleep(100);
				continue;
			}
			die("write");
		}
		buf += n;
		len -= (size_t)n;
	}
}

/* Read one reply line on a blocking socket; returns its length. */
static size_t read_line(int fd, char *buf, size_t size)
{
	size_t len = 0;

	while (len + 1 < size) {
		ssize_t n = read(fd, buf + len, 1);

		if (n <= 0) {
			errno = n == 0 ? ECONNRESET : errno;
			die("read");
		}
		if (buf[len++] == '\n')
			break;
	}
	buf[len] = 0;
	return len;
}

static int cmd_get(int argc, char **argv)
{
	const char *host, *ups, *var;
	int port, nconn, depth, epfd, i;
	double seconds, warmup, t_start, t_end, t, cpu0 = 0;
	long long counted = 0, errors = 0, done = 0;
	struct conn *conns;
	char req[512], *batch, *rbuf;
	size_t reqlen;
	struct epoll_event ev, events[256];

	if (argc != 10)
		usage();
	host = argv[2];
	port = atoi(argv[3]);
	ups = argv[4];
	var = argv[5];
	nconn = atoi(argv[6]);
	depth = atoi(argv[7]);
	seconds = atof(argv[8]);
	warmup = atof(argv[9]);
	if (nconn < 1 || depth < 1 || depth > MAX_DEPTH || seconds <= 0)
		usage();

	reqlen = (size_t)snprintf(req, sizeof(req), "GET VAR %s %s\n", ups, var);
	batch = malloc(reqlen * MAX_DEPTH);
	rbuf = malloc(RBUF);
	conns = calloc((size_t)nconn, sizeof(*conns));
	if (!batch || !rbuf || !conns)
		die("malloc");
	for (i = 0; i < MAX_DEPTH; i++)
		memcpy(batch + i * reqlen, req, reqlen);

	epfd = epoll_create1(0);
	if (epfd < 0)
		die("epoll_create1");
	for (i = 0; i < nconn; i++) {
		conns[i].fd = connect_to(host, port);
		conns[i].at_line_start = 1;
		ev.events = EPOLLIN;
		ev.data.ptr = &conns[i];
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, conns[i].fd, &ev) < 0)
			die("epoll_ctl");
	}

	t = now();
	t_start = t + warmup;
	t_end = t_start + seconds;
	for (i = 0; i < nconn; i++) {
		write_all(conns[i].fd, batch, reqlen * (size_t)depth);
		conns[i].inflight = depth;
	}

	int measuring = warmup <= 0;
	int spin = getenv("NUTLOAD_SPIN") != NULL;

	if (measuring)
		cpu0 = cpu_seconds();
	for (;;) {
		int n = epoll_wait(epfd, events, 256, spin ? 0 : 100);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait");
		}
		t = now();
		if (!measuring && t >= t_start) {
			measuring = 1;
			counted = 0;
			cpu0 = cpu_seconds();
			t_start = t;
			t_end = t_start + seconds;
		}
		if (t >= t_end)
			break;
		for (i = 0; i < n; i++) {
			struct conn *c = events[i].data.ptr;
			ssize_t got = read(c->fd, rbuf, RBUF);
			int lines = 0;

			if (got <= 0) {
				if (got < 0 && errno == EAGAIN)
					continue;
				fprintf(stderr, "nutload: server closed a connection\n");
				exit(1);
			}
			for (ssize_t k = 0; k < got; k++) {
				if (c->at_line_start && rbuf[k] != 'V')
					errors++;
				c->at_line_start = rbuf[k] == '\n';
				lines += c->at_line_start;
			}
			if (lines == 0)
				continue;
			c->inflight -= lines;
			done += lines;
			if (measuring)
				counted += lines;
			write_all(c->fd, batch, reqlen * (size_t)(depth - c->inflight));
			c->inflight = depth;
		}
	}
	double cpu = cpu_seconds() - cpu0;

	printf("requests=%lld seconds=%.3f rps=%.0f errors=%lld cpu=%.2f total=%lld\n",
	       counted, t - t_start, counted / (t - t_start), errors,
	       cpu / (t - t_start), done);
	for (i = 0; i < nconn; i++)
		close(conns[i].fd);
	return errors ? 1 : 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int cmd_list(int argc, char **argv)
{
	const char *host, *ups;
	int port, count, fd, i;
	char req[256], end[256], *buf;
	size_t reqlen, endlen, bytes = 0;
	double *rtt, sum = 0;

	if (argc != 6)
		usage();
	host = argv[2];
	port = atoi(argv[3]);
	ups = argv[4];
	count = atoi(argv[5]);
	if (count < 1)
		usage();
	reqlen = (size_t)snprintf(req, sizeof(req), "LIST VAR %s\n", ups);
	endlen = (size_t)snprintf(end, sizeof(end), "END LIST VAR %s\n", ups);
	buf = malloc(RBUF);
	rtt = calloc((size_t)count, sizeof(*rtt));
	if (!buf || !rtt)
		die("malloc");
	fd = connect_to(host, port);

	/* One untimed LIST first: the connection and the server warm up. */
	for (i = -1; i < count; i++) {
		size_t len = 0;
		double t0 = now();

		write_all(fd, req, reqlen);
		for (;;) {
			ssize_t n = read(fd, buf + len, RBUF - 1 - len);

			if (n <= 0) {
				errno = n == 0 ? ECONNRESET : errno;
				die("read");
			}
			len += (size_t)n;
			if (len >= endlen && memcmp(buf + len - endlen, end, endlen) == 0)
				break;
			if (strncmp(buf, "ERR ", 4) == 0 && buf[len - 1] == '\n') {
				buf[len] = 0;
				fprintf(stderr, "nutload: server answered %s", buf);
				exit(1);
			}
			if (len >= RBUF - 1) {
				fprintf(stderr, "nutload: LIST reply larger than %d bytes\n", RBUF);
				exit(1);
			}
		}
		if (i >= 0) {
			rtt[i] = (now() - t0) * 1e6;
			sum += rtt[i];
			bytes = len;
		}
	}
	close(fd);
	qsort(rtt, (size_t)count, sizeof(*rtt), cmp_double);
	printf("lists=%d bytes=%zu min_us=%.0f median_us=%.0f mean_us=%.0f p90_us=%.0f max_us=%.0f\n",
	       count, bytes, rtt[0], rtt[count / 2], sum / count, rtt[(count * 9) / 10],
	       rtt[count - 1]);
	return 0;
}

static int cmd_idle(int argc, char **argv)
{
	const char *host;
	int port, nconn, i, j, *fds;
	char line[512];
	const int batch = 64;	/* stay well inside the server's listen backlog */

	if (argc != 5)
		usage();
	host = argv[2];
	port = atoi(argv[3]);
	nconn = atoi(argv[4]);
	if (nconn < 1)
		usage();
	fds = calloc((size_t)nconn, sizeof(*fds));
	if (!fds)
		die("calloc");
	for (i = 0; i < nconn; i += batch) {
		int top = i + batch < nconn ? i + batch : nconn;

		for (j = i; j < top; j++) {
			fds[j] = connect_to(host, port);
			write_all(fds[j], "VER\n", 4);
		}
		for (j = i; j < top; j++) {
			read_line(fds[j], line, sizeof(line));
			if (strncmp(line, "Network UPS Tools", 17) != 0) {
				fprintf(stderr, "nutload: unexpected VER reply: %s", line);
				exit(1);
			}
		}
	}
	printf("ready %d\n", nconn);
	fflush(stdout);
	while (read(0, line, sizeof(line)) > 0)
		;
	for (i = 0; i < nconn; i++)
		close(fds[i]);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	if (strcmp(argv[1], "get") == 0)
		return cmd_get(argc, argv);
	if (strcmp(argv[1], "list") == 0)
		return cmd_list(argc, argv);
	if (strcmp(argv[1], "idle") == 0)
		return cmd_idle(argc, argv);
	usage();
	return 2;
}
