"""One provisioning run: check, plan, install, tidy the boot folder.

`main.py` describes the whole story and parses the command line; this is
the run itself, kept apart so that the LED and firewall options of the
command do not load `cryptography` (seconds on a Pi).
"""

import datetime
import os
import sys

from . import install
from .fsops import Fs
from .plan import (ERRORS_FILE, IMPORTED_FILE, MANIFEST, make_plan, read_boot,
                   read_installed)
from .problems import (EXIT_CHECK, EXIT_INSTALL, EXIT_INVALID, EXIT_OK, Problems,
                       errors_report)


class Provisioner:
    def __init__(self, args, gid, prog, step_hook=None):
        self.args = args
        self.gid = gid
        self.prog = prog
        self.boot = args.boot
        self.layout = install.Layout(args.data, args.etc)
        self.fs = Fs(step_hook)
        self.now = datetime.datetime.now(datetime.timezone.utc)

    def say(self, text):
        if not self.args.quiet:
            sys.stdout.write("%s: %s\n" % (self.prog, text))

    def run(self):
        problems = Problems()
        boot_files = read_boot(self.boot, problems)
        current = self.layout.current_dir()
        installed = read_installed(current)
        self.installed = installed
        plan = make_plan(boot_files, installed, os.path.abspath(self.layout.etc),
                         self.layout.state)
        for p in problems:
            plan.problems.items.insert(0, p)
        etc_problem = install.etc_problem(self.layout)
        if etc_problem:
            plan.problems.add(None, None, etc_problem,
                              "move the files away; the appliance's image sets this up")

        if plan.problems:
            return self.refuse(plan.problems)
        try:
            diffs = install.differences(self.layout, plan, self.gid)
        except OSError as e:
            sys.stderr.write("%s: cannot read %s: %s\n" % (self.prog, e.filename, e.strerror))
            return EXIT_INSTALL
        boot_changes = self.boot_changes(plan)

        if self.args.check:
            unsafe = install.unsafe_nodes(self.layout, self.gid)
            for path, why in unsafe:
                sys.stdout.write("%s: %s: %s\n" % (self.prog, path, why))
            if unsafe:
                return EXIT_CHECK
            self.say("the boot folder and the installed configuration are fine"
                     + ("" if not diffs else " (%d changes to import)" % len(diffs)))
            return EXIT_OK
        if self.args.dry_run:
            for path, why in diffs:
                self.say("would install %s (%s)" % (path, why))
            for name, data in boot_changes:
                self.say("would %s %s in the boot folder"
                         % ("remove" if data is None else "write", name))
            if not diffs and not boot_changes:
                self.say("nothing to do")
            return EXIT_OK

        try:
            if diffs:
                path = install.install(self.layout, plan, self.fs, self.gid)
                self.say("installed a new configuration: %s" % path)
            imported = bool(diffs) or any(n for n, d in boot_changes if n not in
                                          plan.boot_outputs)
            self.apply_boot_changes(plan, boot_changes, imported)
        except OSError as e:
            sys.stderr.write("%s: cannot write %s: %s\n"
                             % (self.prog, e.filename or "the data partition", e.strerror))
            return EXIT_INSTALL
        if not diffs and not boot_changes:
            self.say("nothing new to import")
        return EXIT_OK

    def refuse(self, problems):
        for p in problems:
            sys.stderr.write("%s: %s\n" % (self.prog, p))
        if self.args.check or self.args.dry_run:
            return EXIT_INVALID
        report = errors_report(problems, self.now.strftime("%Y-%m-%d %H:%M UTC"))
        path = os.path.join(self.boot, ERRORS_FILE)
        try:
            if _body(_read(path)) != _body(report.encode("utf-8")):
                self.fs.write_file(path, report.encode("utf-8"), None)
        except OSError as e:
            sys.stderr.write("%s: cannot write %s: %s\n" % (self.prog, path, e.strerror))
        return EXIT_INVALID

    def boot_changes(self, plan):
        """``[(name, bytes or None)]`` the boot folder needs, in order."""
        changes = []
        for name, data in sorted(plan.boot_outputs.items()):
            if _read(os.path.join(self.boot, name)) != data:
                changes.append((name, data))
        for name, data in sorted(plan.boot_writes.items()):
            path = _find(self.boot, name)
            if data is None and path is not None:
                changes.append((name, None))
            elif data is not None and _read(path) != data:
                changes.append((name, data))
        if _find(self.boot, ERRORS_FILE):
            changes.append((ERRORS_FILE, None))
        return changes

    def apply_boot_changes(self, plan, changes, imported):
        """Write the public outputs and the note first, then take the
        secrets away: a cut here is finished by the next run."""
        if imported:
            lines = ["%s  nutapp provision imported:" % self.now.strftime("%Y-%m-%d %H:%M UTC")]
            lines += ["  - %s" % n for n in plan.notes]
            changed = sorted(rel for rel, (data, _) in plan.files.items()
                             if self.installed.get(rel) != data and rel != MANIFEST)
            if changed:
                lines.append("  - installed: %s" % ", ".join(changed))
            old = _read(os.path.join(self.boot, IMPORTED_FILE)) or b""
            note = old + ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
            self.fs.write_file(os.path.join(self.boot, IMPORTED_FILE), note, None)
        for name, data in changes:
            path = _find(self.boot, name) or os.path.join(self.boot, name)
            if data is None:
                self.fs.remove(path)
                self.say("removed %s from the boot folder" % name)
            else:
                self.fs.write_file(path, data, None)
                self.say("wrote %s in the boot folder" % name)


def _find(folder, name):
    """The path of `name` in a FAT folder, whatever its case; None if absent."""
    try:
        for real in os.listdir(folder):
            if real.lower() == name.lower():
                return os.path.join(folder, real)
    except OSError:
        pass
    return None


def _read(path):
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _body(report):
    """An errors report without its first line (the time)."""
    return None if report is None else report.split(b"\n", 1)[-1]
