"""Power-loss safe file system steps.

Every change provisioning makes goes through `Fs`, one method per step:
a file is written to a temporary name, flushed with fsync, renamed over
its final name, and the directory is flushed so the rename itself survives
a power cut. A configuration is switched by renaming a symlink, which the
kernel does in one step: readers see the old tree or the new one.

`Fs` counts its steps and calls ``step_hook(n, what)`` before each one.
The crash test uses that to kill the process before every single step.
"""

import os

TMP_SUFFIX = ".nutapp-tmp"


class Fs:
    """Atomic writes, renames and removals, with owner and mode set before
    a file becomes visible under its final name."""

    def __init__(self, step_hook=None, uid=None):
        self.step_hook = step_hook
        self.steps = 0
        # Only root can give files away; a test running unprivileged keeps
        # its own uid and only sets the group.
        self.uid = (0 if os.geteuid() == 0 else -1) if uid is None else uid

    def _step(self, what):
        self.steps += 1
        if self.step_hook is not None:
            self.step_hook(self.steps, what)

    def write_file(self, path, data, mode, gid=-1, sync_dir=True):
        """Write `data` (bytes) to `path` via a temporary file and rename."""
        tmp = path + TMP_SUFFIX
        self._step("create " + tmp)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            self._chown(fd, gid, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        self._step("rename %s -> %s" % (tmp, path))
        os.rename(tmp, path)
        if sync_dir:
            self.fsync_dir(os.path.dirname(path))

    def mkdir(self, path, mode, gid=-1):
        self._step("mkdir " + path)
        os.mkdir(path, 0o700)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            self._chown(fd, gid, mode)
        finally:
            os.close(fd)
        self.fsync_dir(os.path.dirname(path))

    def set_owner_mode(self, path, mode, gid=-1):
        """Fix the owner and mode of an existing directory in place."""
        self._step("chmod %s %o" % (path, mode))
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            self._chown(fd, gid, mode)
            os.fsync(fd)
        finally:
            os.close(fd)

    def rename(self, src, dst):
        self._step("rename %s -> %s" % (src, dst))
        os.rename(src, dst)
        self.fsync_dir(os.path.dirname(dst))
        if os.path.dirname(src) != os.path.dirname(dst):
            self.fsync_dir(os.path.dirname(src))

    def swap_symlink(self, link, target):
        """Point `link` at `target` in one rename; readers never see it missing."""
        tmp = link + TMP_SUFFIX
        if os.path.lexists(tmp):
            self.remove(tmp)
        self._step("symlink %s -> %s" % (tmp, target))
        os.symlink(target, tmp)
        self.rename(tmp, link)

    def remove(self, path):
        self._step("remove " + path)
        os.unlink(path)
        self.fsync_dir(os.path.dirname(path))

    def remove_tree(self, path):
        """Remove a directory tree, deepest entries first."""
        for root, dirs, files in os.walk(path, topdown=False):
            for name in files:
                self._step("remove " + os.path.join(root, name))
                os.unlink(os.path.join(root, name))
            for name in dirs:
                full = os.path.join(root, name)
                self._step("remove " + full)
                if os.path.islink(full):
                    os.unlink(full)
                else:
                    os.rmdir(full)
        self._step("remove " + path)
        os.rmdir(path)
        self.fsync_dir(os.path.dirname(path))

    def fsync_dir(self, path):
        fd = os.open(path or ".", os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _chown(self, fd, gid, mode):
        if mode is None:
            return  # FAT: no owners or modes to set
        if self.uid != -1 or gid != -1:
            os.fchown(fd, self.uid, gid)
        os.fchmod(fd, mode)
