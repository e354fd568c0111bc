"""Where NUT's files live: NUT_CONFPATH, NUT_STATEPATH, NUT_DATAPATH."""

import os

DEFAULT_CONFPATH = "/etc/nut"
DEFAULT_STATEPATH = "/run/nut"  # Debian's choice; NUT's own default is /var/state/ups
DATAPATHS = ("/usr/share/nut", "/usr/local/share/nut")


def confpath():
    return os.environ.get("NUT_CONFPATH") or DEFAULT_CONFPATH


def statepath(configured=None):
    """NUT_STATEPATH wins over a config file's STATEPATH, as in NUT."""
    return os.environ.get("NUT_STATEPATH") or configured or DEFAULT_STATEPATH


def conffile(name):
    return os.path.join(confpath(), name)


def datafile(name):
    """A file of NUT's data directory (cmdvartab...), or None."""
    dirs = [os.environ["NUT_DATAPATH"]] if os.environ.get("NUT_DATAPATH") else []
    for d in dirs + list(DATAPATHS):
        p = os.path.join(d, name)
        if os.path.isfile(p):
            return p
    return None


def driver_socket(statepath_dir, driver, upsname):
    return os.path.join(statepath_dir, "%s-%s" % (driver, upsname))
