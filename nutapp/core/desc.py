"""NUT's cmdvartab: descriptions for GET DESC / GET CMDDESC.

Lines are ``VARDESC <name> "<text>"`` and ``CMDDESC <name> "<text>"``. The
file is NUT's data (installed by NUT packages); nutapp reads it where it is
present and answers "Description unavailable" otherwise, as NUT does.
"""

from .parseconf import parse_text


class Descriptions:
    def __init__(self):
        self.vars = {}
        self.cmds = {}

    def var(self, name):
        return self.vars.get(name.lower())

    def cmd(self, name):
        return self.cmds.get(name.lower())

    @classmethod
    def parse(cls, text):
        d = cls()
        for _, words in parse_text(text):
            if len(words) >= 3:
                kind = words[0].upper()
                if kind == "VARDESC":
                    d.vars[words[1].lower()] = words[2]
                elif kind == "CMDDESC":
                    d.cmds[words[1].lower()] = words[2]
        return d
