"""The `nutapp` command: NUT's tools as subcommands.

``nutapp upsd -F``, ``nutapp upsc myups@localhost``, ``nutapp dummy-ups -a
myups``... Each subcommand keeps NUT's name and main flags. Modules are
imported only when their subcommand runs, so a client starts fast.
"""

import sys

COMMANDS = {
    "upsd": "nutapp.server.upsd:main",
    "upsdrvctl": "nutapp.drivers.upsdrvctl:main",
    "upsc": "nutapp.clients.upsc:main",
    "upscmd": "nutapp.clients.upscmd:main",
    "upsrw": "nutapp.clients.upsrw:main",
    "upsmon": "nutapp.upsmon.main:main",
    "passwd": "nutapp.passwords:main",
    "mdns": "nutapp.mdns:main",
    "provision": "nutapp.provision.main:main",
    "nut-scanner": "nutapp.drivers.scanner:main",
    "timesync": "nutapp.timesync:main",
    "ssh-hostkeys": "nutapp.sshkeys:main",
}


def _usage():
    from nutapp.drivers import DRIVERS

    names = ", ".join(sorted(COMMANDS))
    drivers = ", ".join(sorted(DRIVERS))
    return (
        "usage: nutapp <command> [options]\n"
        "commands: %s\n"
        "drivers (run one as NUT does, e.g. nutapp dummy-ups -a myups): %s\n"
        % (names, drivers)
    )


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        sys.stdout.write(_usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    target = COMMANDS.get(name)
    if target is None:
        from nutapp.drivers import DRIVERS

        if name in DRIVERS:
            from nutapp.drivers.main import main as driver_main

            return driver_main(rest, driver=name)
        sys.stderr.write("nutapp: unknown command %r\n%s" % (name, _usage()))
        return 2
    module, _, func = target.partition(":")
    mod = __import__(module, None, None, [func])
    return getattr(mod, func)(rest, prog="nutapp " + name)


def run():
    sys.exit(main())


if __name__ == "__main__":
    run()
