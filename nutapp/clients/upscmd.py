"""`nutapp upscmd`: run an instant command on a UPS, as NUT's upscmd does.

    upscmd -l ups[@host[:port]]
    upscmd [-u user] [-p password] [-w] [-t timeout] ups[@host[:port]] <cmd> [<value>]
"""

import argparse
import sys

from nutapp.clients.auth import run_authenticated
from nutapp.clients.client import ServerError
from nutapp.clients.common import connect, fail, run


def main(argv=None, prog="upscmd"):
    p = argparse.ArgumentParser(prog=prog, description="Run an instant command on a UPS")
    p.add_argument("-l", dest="list", action="store_true", help="list the commands")
    p.add_argument("-u", dest="user")
    p.add_argument("-p", dest="password")
    p.add_argument("-w", dest="wait", action="store_true", help="wait for the result")
    p.add_argument("-t", dest="timeout", type=int, default=10)
    p.add_argument("ups")
    p.add_argument("command", nargs="?")
    p.add_argument("value", nargs="?")
    args = p.parse_args(argv)

    def go():
        ups, c = connect(args.ups)
        with c:
            if args.list:
                sys.stdout.write("Instant commands supported on UPS [%s]:\n\n" % ups)
                for cmd in c.list_cmds(ups):
                    try:
                        desc = c.get_cmddesc(ups, cmd)
                    except ServerError:
                        desc = "Unavailable"
                    sys.stdout.write("%s - %s\n" % (cmd, desc))
                return 0
            if not args.command:
                fail("Error: no command given (use -l to list them)")
            return run_authenticated(c, args,
                                     lambda c: c.instcmd(ups, args.command, args.value))

    return run(go)
