"""Installing a plan on the data partition, switched in one step.

Layout under ``<data>/nut`` (group ``nut``)::

    versions/7/          a whole configuration, 0750 root:nut; files 0640
                         root:nut, except system/ (0700 root:root, files
                         0600): network, Wi-Fi, SSH keys, firewall
    current -> versions/7
    state/               0770 root:nut: the drivers' sockets (STATEPATH)

and ``/etc/nut -> <data>/nut/current`` (the --etc path) for the services.

A new configuration is written into ``versions/<n>.tmp``, every file and
directory flushed, renamed to ``versions/<n>``, and then ``current`` is
switched with one rename of a symlink. A power cut at any moment leaves
``current`` on the old or the new configuration, never on a mix; the next
run clears leftovers. The previous version is kept as a fallback, older
ones are removed.
"""

import os
import stat

from .plan import DIR_MODES, FILE_MODES, NUT, ROOT, SYSTEM_DIR

STAGING_SUFFIX = ".tmp"


class Layout:
    def __init__(self, data, etc):
        self.data = os.path.abspath(data)
        self.root = os.path.join(self.data, "nut")
        self.versions = os.path.join(self.root, "versions")
        self.current = os.path.join(self.root, "current")
        self.state = os.path.join(self.root, "state")
        self.etc = etc

    def current_dir(self):
        """The directory `current` points at, or None."""
        if not os.path.islink(self.current):
            return None
        target = os.path.join(self.root, os.readlink(self.current))
        return target if os.path.isdir(target) else None


def etc_problem(layout):
    """Why --etc cannot be pointed at the configuration, or None."""
    etc = layout.etc
    if os.path.islink(etc) or not os.path.lexists(etc):
        if not os.path.isdir(os.path.dirname(os.path.abspath(etc))):
            return "the folder holding %s does not exist" % etc
        return None
    if os.path.isdir(etc) and os.listdir(etc):
        return ("%s is a folder with files; provisioning makes it a link to %s"
                % (etc, layout.current))
    if not os.path.isdir(etc):
        return "%s is a file, not a link to the configuration" % etc
    return None


def owner_of(access, gid):
    """(uid, gid) wanted for an access class; -1 leaves the group alone."""
    return 0, (gid if access == NUT else 0)


def differences(layout, plan, gid):
    """What differs between the plan and the installed configuration:
    a list of ``(path, reason)``; empty when nothing needs installing."""
    diffs = []
    for path, mode, access in _fixed_dirs(layout):
        diffs += _check_node(path, mode, access, gid, directory=True)
    current = layout.current_dir()
    if current is None:
        return diffs + [(layout.current, "no configuration installed")]
    if os.path.realpath(layout.etc) != os.path.realpath(layout.current):
        diffs.append((layout.etc, "does not point at %s" % layout.current))

    wanted_dirs = {"": NUT, SYSTEM_DIR: ROOT}
    for rel, access in wanted_dirs.items():
        path = os.path.join(current, rel) if rel else current
        diffs += _check_node(path, DIR_MODES[access], access, gid, directory=True)
    present = set()
    for root, dirs, names in os.walk(current):
        for name in dirs:
            rel = os.path.relpath(os.path.join(root, name), current)
            if rel not in wanted_dirs:
                diffs.append((os.path.join(root, name), "not part of the configuration"))
        for name in names:
            present.add(os.path.relpath(os.path.join(root, name), current))
    for rel in sorted(present - set(plan.files)):
        diffs.append((os.path.join(current, rel), "no longer wanted"))
    for rel, (data, access) in sorted(plan.files.items()):
        path = os.path.join(current, rel)
        if rel not in present:
            diffs.append((path, "new"))
            continue
        with open(path, "rb") as f:
            if f.read() != data:
                diffs.append((path, "changed"))
        diffs += _check_node(path, FILE_MODES[access], access, gid, directory=False)
    return diffs


def unsafe_nodes(layout, gid):
    """Installed files and folders whose owner or mode is not the wanted one."""
    found = []
    for path, mode, access in _fixed_dirs(layout):
        found += _check_node(path, mode, access, gid, directory=True)
    current = layout.current_dir()
    if current is None:
        return found + [(layout.current, "no configuration installed")]
    for root, dirs, names in os.walk(current):
        rel = os.path.relpath(root, current)
        access = ROOT if rel.split(os.sep)[0] == SYSTEM_DIR else NUT
        found += _check_node(root, DIR_MODES[access], access, gid, directory=True)
        for name in names:
            found += _check_node(os.path.join(root, name), FILE_MODES[access], access,
                                 gid, directory=False)
    return found


def _fixed_dirs(layout):
    return [(layout.root, 0o750, NUT), (layout.versions, 0o750, NUT),
            (layout.state, 0o770, NUT)]


def _check_node(path, mode, access, gid, directory):
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return [(path, "missing")]
    if directory != stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode):
        return [(path, "wrong type")]
    uid, want_gid = owner_of(access, gid)
    problems = []
    if stat.S_IMODE(st.st_mode) != mode:
        problems.append((path, "mode %04o, wanted %04o" % (stat.S_IMODE(st.st_mode), mode)))
    if want_gid != -1 and st.st_gid != want_gid:
        problems.append((path, "group %d, wanted %d" % (st.st_gid, want_gid)))
    if os.geteuid() == 0 and st.st_uid != uid:
        problems.append((path, "owner %d, wanted %d" % (st.st_uid, uid)))
    return problems


def install(layout, plan, fs, gid):
    """Write the plan as a new version and switch `current` to it."""
    _ensure_dir(fs, layout.root, 0o750, gid)
    _ensure_dir(fs, layout.versions, 0o750, gid)
    _ensure_dir(fs, layout.state, 0o770, gid)
    _clear_leftovers(fs, layout)

    previous = layout.current_dir()
    numbers = [int(n) for n in os.listdir(layout.versions) if n.isdigit()]
    version = str(max(numbers, default=0) + 1)
    staging = os.path.join(layout.versions, version + STAGING_SUFFIX)
    final = os.path.join(layout.versions, version)

    fs.mkdir(staging, DIR_MODES[NUT], gid)
    fs.mkdir(os.path.join(staging, SYSTEM_DIR), DIR_MODES[ROOT], 0)
    for rel, (data, access) in sorted(plan.files.items()):
        _, file_gid = owner_of(access, gid)
        fs.write_file(os.path.join(staging, rel), data, FILE_MODES[access], file_gid,
                      sync_dir=False)
    fs.fsync_dir(os.path.join(staging, SYSTEM_DIR))
    fs.fsync_dir(staging)
    fs.rename(staging, final)
    fs.swap_symlink(layout.current, os.path.join("versions", version))
    _link_etc(fs, layout)

    keep = {version, os.path.basename(previous) if previous else None}
    for name in sorted(os.listdir(layout.versions)):
        if name not in keep:
            fs.remove_tree(os.path.join(layout.versions, name))
    return final


def _link_etc(fs, layout):
    etc = layout.etc
    if os.path.realpath(etc) == os.path.realpath(layout.current) and os.path.islink(etc):
        return
    if os.path.isdir(etc) and not os.path.islink(etc):
        fs._step("rmdir " + etc)
        os.rmdir(etc)  # empty (checked by etc_problem before anything was changed)
    fs.swap_symlink(etc, layout.current)


def _ensure_dir(fs, path, mode, gid):
    if not os.path.isdir(path):
        fs.mkdir(path, mode, gid)
    elif _check_node(path, mode, NUT, gid, directory=True):
        fs.set_owner_mode(path, mode, gid)


def _clear_leftovers(fs, layout):
    """Remove what a run cut short left behind: staging folders, temp links."""
    for name in os.listdir(layout.versions):
        path = os.path.join(layout.versions, name)
        if not name.isdigit():
            if os.path.isdir(path) and not os.path.islink(path):
                fs.remove_tree(path)
            else:
                fs.remove(path)
    for link in (layout.current, layout.etc):
        tmp = link + ".nutapp-tmp"
        if os.path.lexists(tmp):
            fs.remove(tmp)
