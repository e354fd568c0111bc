"""`nutapp provision`: import the boot folder's settings into the appliance.

    nutapp provision --boot /boot/nut --data /data --etc /etc/nut
    nutapp provision ... --check      only check, change nothing (exit 3 or 5)
    nutapp provision ... --dry-run    say what would change, change nothing
    nutapp provision --blink 3        show exit code 3 on the status LED

Order of work: read the boot folder and the installed configuration; check
everything and work out the whole next configuration in memory (plan.py);
on any problem write PROVISIONING-ERRORS.txt to the boot folder, change
nothing else and exit 3. Otherwise, when the configuration differs from
the installed one, install it as a new version and switch to it in one
step (install.py); then tidy the boot folder. With nothing new, nothing is
written at all.

Secrets and the boot folder (FAT has no owners or modes, and the card may
be read by any computer):

- passwords in nutapp.conf and upsd.users are replaced, on their line, by
  their scrypt hash (nutapp.passwords): the files stay the person's own,
  editable, and a second run imports the same thing again. A hash is not a
  password, but it can be attacked offline: passwords should be long.
- the Wi-Fi passphrase line becomes a comment; the installed
  wpa_supplicant.conf holds the derived key, and a later run without a
  passphrase keeps it while the network name is the same.
- private keys (upsd.key, upsd.pem) and upsmon.conf (its MONITOR lines
  carry passwords upsmon must send as they are) are removed.
- secrets leave only after the configuration holding them is installed;
  a power cut in between leaves them there, and the next run finishes.

Left for the person: SERVER-CERTIFICATE.pem and its SHA-256 fingerprint
(for clients to pin), IMPORTED.txt (what was imported, and when).

Exit codes (problems.py): 0 done or nothing to do, 2 usage, 3 a problem
in the boot folder, 4 the data partition could not be written, 5 --check
found the installed configuration missing or unsafe.
"""

import argparse
import datetime
import grp
import os
import sys

from . import install
from .fsops import Fs
from .plan import (ERRORS_FILE, IMPORTED_FILE, MANIFEST, make_plan, read_boot,
                   read_installed)
from .problems import (EXIT_CHECK, EXIT_INSTALL, EXIT_INVALID, EXIT_OK, Problems,
                       errors_report)


def main(argv=None, prog="nutapp provision", step_hook=None):
    parser = argparse.ArgumentParser(prog=prog, description=(
        "Import settings, users and certificates from the SD card's boot folder."))
    parser.add_argument("--boot", help="the folder on the boot partition (FAT)")
    parser.add_argument("--data", help="where the data partition is mounted")
    parser.add_argument("--etc", help="the NUT configuration folder the services read "
                        "(made a link to <data>/nut/current)")
    parser.add_argument("--group", default="nut", help="group of the NUT services "
                        "(default: nut)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true",
                      help="check the boot folder and the installed files, change nothing")
    mode.add_argument("--dry-run", action="store_true",
                      help="show what would change, change nothing")
    mode.add_argument("--blink", type=int, metavar="CODE",
                      help="blink exit code CODE on the status LED, then exit")
    parser.add_argument("--led-pin", default="GPIO17",
                        help="the status LED's pin for --blink (default: GPIO17)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="how many times --blink shows the code (default: 3)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only problems")
    args = parser.parse_args(argv)

    if args.blink is not None:
        from .led import blink_code

        try:
            blink_code(args.blink, pin=args.led_pin, repeat=args.repeat)
        except Exception as e:  # gpiozero's errors: no GPIO, pin busy, no permission
            sys.stderr.write("%s: cannot use the status LED: %s\n" % (prog, e))
            return 1
        return EXIT_OK
    for name in ("boot", "data", "etc"):
        if not getattr(args, name):
            parser.error("--%s is required" % name)
    try:
        gid = grp.getgrnam(args.group).gr_gid
    except KeyError:
        sys.stderr.write("%s: there is no group %r\n" % (prog, args.group))
        return EXIT_INSTALL
    try:
        return Provisioner(args, gid, prog, step_hook).run()
    except OSError as e:
        sys.stderr.write("%s: %s: %s\n" % (prog, e.filename or "data partition", e.strerror))
        return EXIT_INSTALL


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
