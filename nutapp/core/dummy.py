"""dummy-ups definition files (.dev / .seq), parsed without I/O.

Lines are ``var.name: value`` (the upsc format, with parseconf quoting),
``TIMER <seconds>`` (pause the sequence), ``ALARM [text]`` (raise an alarm;
a bare ALARM clears them) and ``#`` comments. ``driver.*`` lines are
skipped; an empty value deletes a variable. The words of a value are joined
with single spaces, as NUT's dummy-ups does.

The Devices Dumps Library adds annotations in comments, which nutapp's
simulator honours to be more faithful than NUT's: ``#RW:var:STRING[:len]``,
``#RW:var:ENUM:"value"``, ``#RW:var:RANGE:"min":"max"`` and ``#CMD:name``.
"""

from .parseconf import parse_text
from .errors import ConfigError


class Definition:
    def __init__(self):
        self.steps = []  # ("set", var, value) | ("timer", secs) | ("alarm", text|None)
        # lower-case var -> {"var", "type": STRING|ENUM|RANGE, "len", "enums", "ranges"}
        self.rw = {}
        self.cmds = []


def _annotation(defn, line):
    body = line[1:].strip()
    if body.startswith("CMD:"):
        name = body[4:].split()[0] if body[4:].split() else ""
        if name and name not in defn.cmds:
            defn.cmds.append(name)
    elif body.startswith("RW:"):
        rest = body[3:].split("\t")[0].split("#")[0].strip()
        parts = rest.split(":")
        if len(parts) < 2 or not parts[0]:
            return
        var, kind = parts[0], parts[1].upper()
        spec = defn.rw.setdefault(var.lower(), {"var": var, "type": kind, "len": 0,
                                                "enums": [], "ranges": []})
        args = [p.strip().strip('"') for p in parts[2:]]
        if kind == "STRING" and args:
            try:
                spec["len"] = int(args[0])
            except ValueError:
                pass
        elif kind == "ENUM" and args:
            if args[0] not in spec["enums"]:
                spec["enums"].append(args[0])
        elif kind == "RANGE" and len(args) >= 2:
            try:
                spec["ranges"].append((int(args[0]), int(args[1])))
            except ValueError:
                pass


def parse_definition(text, filename="(dummy)", errors=None):
    """Parse a definition file.

    Like NUT's dummy-ups, a line the grammar rejects is skipped (appended to
    `errors` as ``(lineno, message)`` when a list is given) and the rest of
    the file still counts.
    """
    defn = Definition()
    for line in text.split("\n"):
        s = line.lstrip()
        if s.startswith("#RW:") or s.startswith("#CMD:"):
            _annotation(defn, s)
    lines = parse_text(text, errors if errors is not None else [])
    for lineno, words in lines:
        head = words[0]
        if head.startswith("TIMER"):
            secs = 0
            if len(words) > 1:
                try:
                    secs = int(float(words[1]))
                except ValueError:
                    raise ConfigError("TIMER needs a number of seconds", filename, lineno)
            defn.steps.append(("timer", secs))
            continue
        if head.startswith("ALARM"):
            text_ = " ".join(words[1:])
            defn.steps.append(("alarm", text_ or None))
            continue
        name = head.split(":", 1)[0]
        if not name:
            raise ConfigError("expected 'variable: value'", filename, lineno)
        if name.startswith("driver."):
            continue
        value_words = words[1:]
        rest = head.split(":", 1)
        if len(rest) == 2 and rest[1]:
            value_words = [rest[1]] + value_words
        defn.steps.append(("set", name, " ".join(value_words)))
    return defn


def looks_numeric(value):
    try:
        float(value)
        return True
    except ValueError:
        return False
