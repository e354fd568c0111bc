"""`nutapp upsrw`: show or set a UPS's writable variables, as NUT's upsrw.

    upsrw [-l] ups[@host[:port]]
    upsrw -s var[=value] [-u user] [-p password] [-w] [-t timeout] ups[@host[:port]]
"""

import argparse
import sys

from nutapp.clients.auth import run_authenticated
from nutapp.clients.client import ServerError
from nutapp.clients.common import connect, fail, run


def _show(c, ups, var, value, out):
    out.write("[%s]\n" % var)
    try:
        out.write(c.get_desc(ups, var) + "\n")
    except ServerError:
        out.write("Description unavailable\n")
    words = [w.upper() for w in c.get_type(ups, var)]
    length = None
    base = "NUMBER"
    for w in words:
        if w.startswith("STRING:"):
            base = "STRING"
            length = w[7:]
    if "ENUM" in words:
        out.write("Type: ENUM %s\n" % base if base == "STRING" else "Type: ENUM\n")
        if length is not None:
            out.write("Maximum length: %s\n" % length)
        for opt in c.list_enum(ups, var):
            out.write('Option: "%s"%s\n' % (opt, " SELECTED" if opt == value else ""))
    elif "RANGE" in words:
        out.write("Type: RANGE NUMBER\n")
        for lo, hi in c.list_range(ups, var):
            sel = ""
            try:
                if lo <= int(float(value)) <= hi:
                    sel = " SELECTED"
            except ValueError:
                pass
            out.write('Option: "%d-%d"%s\n' % (lo, hi, sel))
    elif base == "STRING":
        out.write("Type: STRING\nMaximum length: %s\nValue: %s\n" % (length, value))
    else:
        out.write("Type: NUMBER\nValue: %s\n" % value)
    out.write("\n")


def main(argv=None, prog="upsrw"):
    p = argparse.ArgumentParser(prog=prog, description="Show or set writable UPS variables")
    p.add_argument("-l", dest="list", action="store_true")
    p.add_argument("-s", dest="set")
    p.add_argument("-u", dest="user")
    p.add_argument("-p", dest="password")
    p.add_argument("-w", dest="wait", action="store_true")
    p.add_argument("-t", dest="timeout", type=int, default=10)
    p.add_argument("ups")
    args = p.parse_args(argv)

    def go():
        ups, c = connect(args.ups)
        with c:
            if not args.set:
                for var, value in c.list_rw(ups):
                    _show(c, ups, var, value, sys.stdout)
                return 0
            var, eq, value = args.set.partition("=")
            if not eq:
                sys.stdout.write("Enter new value for %s: " % var)
                sys.stdout.flush()
                value = sys.stdin.readline().rstrip("\n")
            return run_authenticated(c, args, lambda c: c.set_var(ups, var, value))

    return run(go)
