"""Writing to the appliance's SD card, whose partitions stay read-only.

The boot (FAT) and data (ext4) partitions are mounted read-only, so that an
ordinary boot and a power cut write nothing. The few things written after
provisioning (the last known time, SSH host keys, their fingerprints for
the person) go through `writable`, which remounts the partition read-write
for the moment it takes, one writer at a time, and `write_atomic`, which
replaces a file in one rename with everything flushed first.
"""

import contextlib
import fcntl
import os
import subprocess

LOCK_DIR = "/run/lock"


@contextlib.contextmanager
def writable(folder):
    """Make the file system holding `folder` writable while the block runs,
    when it is a read-only mount other than the root, and read-only again
    after; one writer at a time across processes."""
    mountpoint, options = mount_of(folder)
    if "ro" not in options or mountpoint == "/":
        yield
        return
    lock = None
    if os.path.isdir(LOCK_DIR):
        lock = open(os.path.join(LOCK_DIR, "nutapp-remount.lock"), "w")
        fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        _remount(mountpoint, "rw")
        try:
            yield
        finally:
            os.sync()
            _remount(mountpoint, "ro")
    finally:
        if lock is not None:
            lock.close()


def write_atomic(path, data, mode=0o644):
    """Replace `path` by a file holding `data` (bytes) with `mode`: written
    beside it, flushed, renamed over it, and the folder flushed."""
    folder = os.path.dirname(os.path.abspath(path))
    tmp = path + ".tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)
    fsync_folder(folder)


def fsync_folder(folder):
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        pass  # FAT folders cannot always be flushed on their own; sync follows
    finally:
        os.close(fd)


def mount_of(folder):
    """``(mount point, set of options)`` of the mount holding `folder`."""
    folder = os.path.realpath(folder)
    best, options = "/", set()
    try:
        with open("/proc/self/mounts") as f:
            lines = f.read().splitlines()
    except OSError:
        return best, options
    for line in lines:
        fields = line.split()
        if len(fields) < 4:
            continue
        point = fields[1].replace("\\040", " ")
        inside = folder == point or folder.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, options = point, set(fields[3].split(","))
    return best, options


def _remount(mountpoint, mode):
    subprocess.run(["mount", "-o", "remount,%s" % mode, mountpoint], check=True,
                   stdout=subprocess.DEVNULL)
