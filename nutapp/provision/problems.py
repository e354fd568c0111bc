"""Problems found in the boot folder, told the way a person can fix them.

Validation never stops at the first mistake: every check adds a `Problem`
to a `Problems` list, so PROVISIONING-ERRORS.txt names all of them at once
and the person does not have to pull the SD card once per typo.
"""

# Exit codes of `nutapp provision`, distinct so the init can show them on
# the status LED (see led.py): the number of blinks is the code.
EXIT_OK = 0
EXIT_USAGE = 2
EXIT_INVALID = 3  # a file in the boot folder is wrong: nothing was changed
EXIT_INSTALL = 4  # the data partition could not be written
EXIT_CHECK = 5  # --check: the installed configuration is missing or unsafe


class Problem:
    """One mistake: where it is, what is wrong, how to fix it."""

    def __init__(self, filename, lineno, what, fix=""):
        self.filename = filename
        self.lineno = lineno
        self.what = what
        self.fix = fix

    def where(self):
        if self.filename and self.lineno:
            return "%s line %d" % (self.filename, self.lineno)
        return self.filename or "provisioning"

    def __str__(self):
        return "%s: %s" % (self.where(), self.what)

    def __repr__(self):
        return "Problem(%r, %r, %r)" % (self.filename, self.lineno, self.what)


class Problems:
    def __init__(self):
        self.items = []

    def add(self, filename, lineno, what, fix=""):
        self.items.append(Problem(filename, lineno, what, fix))

    def __bool__(self):
        return bool(self.items)

    def __iter__(self):
        return iter(self.items)

    def __len__(self):
        return len(self.items)


def errors_report(problems, when):
    """The text of PROVISIONING-ERRORS.txt."""
    count = len(problems)
    lines = [
        "nutapp could not use the files in this folder (%s)." % when,
        "",
        "Nothing was changed: the appliance keeps running with its previous",
        "settings (or, on the first start, serves nothing yet).",
        "Fix the %s below on this SD card, then start the appliance again."
        % ("problem" if count == 1 else "%d problems" % count),
        "This file is removed once everything is imported.",
        "",
    ]
    ordered = sorted(problems, key=lambda p: (p.filename or "", p.lineno or 0))
    for n, p in enumerate(ordered, 1):
        lines.append("%d. %s" % (n, p.where()))
        lines.append("   What is wrong: %s" % p.what)
        if p.fix:
            lines.append("   How to fix it: %s" % p.fix)
        lines.append("")
    return "\r\n".join(lines)
