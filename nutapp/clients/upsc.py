"""`nutapp upsc`: show a UPS's variables, as NUT's upsc does.

    upsc ups[@host[:port]] [variable]
    upsc -l | -L [host[:port]]     list UPS names (-L with descriptions)
    upsc -c ups[@host[:port]]      list the clients logged in to a UPS
"""

import sys

from nutapp.clients.common import connect, fail, run

USAGE = __doc__


def main(argv=None, prog="upsc"):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write("usage:" + USAGE)
        return 0 if argv else 1
    out = sys.stdout

    def go():
        flag = argv[0]
        if flag in ("-l", "-L"):
            spec = "@" + argv[1] if len(argv) > 1 else "@localhost"
            _, c = connect(spec, need_ups=False)
            with c:
                for name, desc in c.list_ups():
                    out.write("%s: %s\n" % (name, desc) if flag == "-L" else name + "\n")
            return 0
        if flag == "-c":
            if len(argv) < 2:
                fail("Error: -c needs a UPS name")
            ups, c = connect(argv[1])
            with c:
                for addr in c.list_clients(ups):
                    out.write(addr + "\n")
            return 0
        if flag.startswith("-"):
            fail("upsc: unknown option %s\nusage:%s" % (flag, USAGE))
        ups, c = connect(argv[0])
        with c:
            if len(argv) > 1:
                out.write(c.get_var(ups, argv[1]) + "\n")
            else:
                for name, value in c.list_vars(ups):
                    out.write("%s: %s\n" % (name, value))
        return 0

    return run(go)
