"""Errors of the core. Protocol errors carry NUT's ERR word."""


class NutError(Exception):
    """Root of every nutapp error.

    `word` is NUT's error word (``ACCESS-DENIED``...) when the error maps onto
    one, so a server can answer ``ERR <word>`` without translating.
    """

    word = "UNKNOWN-COMMAND"

    def __init__(self, message="", word=None):
        super().__init__(message or (word or self.word))
        if word is not None:
            self.word = word
        self.message = message or self.word

    def __str__(self):
        return self.message


class ParseError(NutError):
    """A line that NUT's grammar rejects (unbalanced quotes, # in quotes)."""

    word = "INVALID-ARGUMENT"


class ConfigError(NutError):
    """A broken configuration file; str() names file:line and the problem."""

    def __init__(self, message, filename=None, lineno=None):
        where = ""
        if filename:
            where = filename + (":" + str(lineno) if lineno else "") + ": "
        super().__init__(where + message)
        self.filename = filename
        self.lineno = lineno
        self.problem = message
