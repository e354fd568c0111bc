"""The `rules` of NUT's generic_gpio driver, parsed and evaluated without I/O.

A rules string maps GPIO line levels to ups.status words:

    rules = "OL=^0;OB=0;LB=3;RB=1;DISCHRG=0&^6;BYPASS=6;"

Each rule is `STATE=expression;`. The expression combines line numbers
(offsets on the GPIO chip) with `^` (not, before one line), `&` (and) and
`|` (or); `&` binds tighter than `|`, so `1|2&3` is `1 | (2 & 3)`. A line
reads 1 when it is high. There are no parentheses.

Grammar:

    rules  := rule { ";" rule } [ ";" ]
    rule   := STATE "=" term { "|" term }
    term   := factor { "&" factor }
    factor := [ "^" ] LINE
    STATE  := letters          LINE := digits

This accepts every string NUT's parser accepts, with two allowances:
blanks between tokens, and no `;` after the last rule (NUT insists on it).
A malformed string raises `RulesError` naming the position and what was
expected there.

The rest of generic_gpio's behaviour lives here too (`ups_state`): the
words of the true rules in rule order, battery.charger.status from CHRG
and DISCHRG, and the battery.charge NUT derives from LB and
battery.charge.low. Runs under MicroPython.
"""

from nutapp.core.errors import ConfigError


class RulesError(ConfigError):
    """A `rules` string that does not parse."""

    def __init__(self, message, text=None, pos=None):
        if text is not None and pos is not None:
            message = "rules: %s at position %d: %s" % (message, pos, _show(text, pos))
        else:
            message = "rules: " + message
        ConfigError.__init__(self, message)
        self.pos = pos


def _show(text, pos):
    return "%r <- here" % text[:pos + 1] if pos < len(text) else "%r <- end" % text


class Rule:
    """One `STATE=expression`: `terms` is a list of AND-groups of
    (line, inverted) pairs; the rule holds when any group holds."""

    def __init__(self, state, terms):
        self.state = state
        self.terms = terms

    def lines(self):
        out = []
        for term in self.terms:
            for line, _ in term:
                if line not in out:
                    out.append(line)
        return out

    def evaluate(self, levels):
        """True if the rule holds for `levels` (line -> 0/1 or bool)."""
        for term in self.terms:
            ok = True
            for line, inverted in term:
                level = bool(levels[line])
                if level == inverted:
                    ok = False
                    break
            if ok:
                return True
        return False

    def __repr__(self):
        groups = ["&".join(("^" if inv else "") + str(n) for n, inv in t) for t in self.terms]
        return "%s=%s" % (self.state, "|".join(groups))


class Rules:
    """A parsed rules string."""

    def __init__(self, rules):
        self.rules = rules

    def lines(self):
        """The line numbers used, in order of first use."""
        out = []
        for r in self.rules:
            for n in r.lines():
                if n not in out:
                    out.append(n)
        return out

    def true_states(self, levels):
        """The states whose rule holds, in rule order, without repeats."""
        out = []
        for r in self.rules:
            if r.evaluate(levels) and r.state not in out:
                out.append(r.state)
        return out

    def __str__(self):
        return ";".join(repr(r) for r in self.rules) + ";"


# -- parsing ----------------------------------------------------------------
def parse(text):
    """Parse a rules string into `Rules`; RulesError if it is malformed."""
    if text is None or not text.strip():
        raise RulesError("empty (example: \"OL=^0;OB=0;LB=3;\")")
    toks = _tokens(text)
    rules = []
    i = 0
    while True:
        kind, value, pos = toks[i]
        if kind != "state":
            raise RulesError("expected a state name such as OL", text, pos)
        state = value
        kind, _, pos = toks[i + 1]
        if kind != "=":
            raise RulesError("expected '=' after %s" % state, text, pos)
        i += 2
        terms = [[]]
        while True:
            inverted = False
            kind, value, pos = toks[i]
            if kind == "^":
                inverted = True
                i += 1
                kind, value, pos = toks[i]
            if kind != "line":
                after = " after '^'" if inverted else ""
                raise RulesError("expected a line number" + after, text, pos)
            terms[-1].append((value, inverted))
            i += 1
            kind, _, pos = toks[i]
            if kind == "&":
                i += 1
            elif kind == "|":
                terms.append([])
                i += 1
            elif kind in (";", "end"):
                break
            else:
                raise RulesError("expected '&', '|' or ';'", text, pos)
        rules.append(Rule(state, terms))
        if kind == "end":
            break
        i += 1  # the ';'
        if toks[i][0] == "end":
            break
    return Rules(rules)


def _tokens(text):
    out = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c in " \t":
            i += 1
            continue
        start = i
        if _is_letter(c):
            while i < n and _is_letter(text[i]):
                i += 1
            out.append(("state", text[start:i], start))
            continue
        if "0" <= c <= "9":
            while i < n and "0" <= text[i] <= "9":
                i += 1
            out.append(("line", int(text[start:i]), start))
            continue
        if c in "=^&|;":
            out.append((c, c, start))
            i += 1
            continue
        raise RulesError("unexpected character %r" % c, text, start)
    out.append(("end", None, n))
    return out


def _is_letter(c):
    return ("A" <= c <= "Z") or ("a" <= c <= "z")


# -- what the states mean for the other variables ------------------------
class GpioState:
    """The result of one reading: ups.status words and related values."""

    def __init__(self, words, charger, charge):
        self.words = words
        self.charger = charger  # battery.charger.status, or None to delete it
        self.charge = charge    # battery.charge text, None to delete, False to leave


def ups_state(rules, levels, charge_low=None):
    """What generic_gpio publishes for line `levels`.

    battery.charger.status follows whichever of CHRG/DISCHRG holds (the
    later rule wins if both do). With a battery.charge.low, battery.charge
    reads that value under LB and 100 otherwise; under BYPASS the charge
    is unknown and deleted.
    """
    words = rules.true_states(levels)
    charger = None
    for w in words:
        if w == "CHRG":
            charger = "charging"
        elif w == "DISCHRG":
            charger = "discharging"
    charge = False
    if charge_low is not None:
        charge = str(charge_low) if "LB" in words else "100"
    if "BYPASS" in words:
        charge = None
    return GpioState(words, charger, charge)
