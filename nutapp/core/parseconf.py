"""NUT's configuration and protocol grammar.

NUT uses one small grammar for its config files, the network protocol and
the driver socket: words split on white space; ``"..."`` groups a word;
``\\`` makes the next character literal (inside and outside quotes); an
unquoted ``#`` starts a comment; an ``=`` that starts or ends an unquoted
word is a word of its own; characters outside printable ASCII are dropped
(CVE-2012-2944). A line ending inside quotes, or after a ``\\``, continues
on the next physical line. An unescaped ``#`` inside quotes is an error.

`split_line` handles one line (the protocol's unit); `parse_text` a whole
file, yielding ``(lineno, words)`` with the line number where each logical
line started. `quote` is the inverse used for replies.
"""

from .errors import ParseError

MAX_WORDS = 32
MAX_WORD_LEN = 512

_ESCAPED = '\\"#'
_SPECIAL = '\\"#='

# States of the character machine.
_START, _WORD, _QUOTE, _QUOTE_LIT, _WORD_LIT, _COMMENT = range(6)

try:
    "".isascii
    "".isprintable

    def _plain(s):
        return s.isascii() and s.isprintable()

except AttributeError:  # MicroPython: take the slow path

    def _plain(s):
        return False


def quote(value):
    """Escape a value for a quoted reply: backslash before \\, " and #."""
    if '\\' not in value and '"' not in value and "#" not in value:
        return value
    out = []
    for ch in value:
        if ch in _ESCAPED:
            out.append("\\")
        out.append(ch)
    return "".join(out)


def split_line(line, max_words=MAX_WORDS, max_len=MAX_WORD_LEN):
    """Split one protocol line (no newline) into words.

    Raises ParseError for an unbalanced quote, a ``#`` inside quotes, a
    trailing lone backslash, or more than `max_words` words.
    """
    if _plain(line):
        for ch in _SPECIAL:
            if ch in line:
                break
        else:
            words = line.split()
            if max_words and len(words) > max_words:
                raise ParseError("too many words (more than %d)" % max_words)
            if max_len:
                for w in words:
                    if len(w) > max_len:
                        words = [x[:max_len] for x in words]
                        break
            return words
    p = _Parser(max_len)
    p.feed(line)
    p.end_of_line(final=True)
    if p.error:
        raise ParseError(p.error)
    words = p.lines[0][1] if p.lines else []
    if max_words and len(words) > max_words:
        raise ParseError("too many words (more than %d)" % max_words)
    return words


def parse_text(text, errors=None):
    """Parse a whole file. Returns a list of ``(lineno, words)``.

    Raises ParseError with ``lineno`` set on the first grammar error. When
    `errors` is a list, it is lenient the way NUT's reader is: the broken
    logical line is dropped, ``(lineno, message)`` appended to `errors`, and
    parsing resumes right after the offending character; an unterminated
    quote at the end of the file just ends the last word.
    """
    p = _Parser(MAX_WORD_LEN)
    p.lenient = errors is not None
    for lineno, line in enumerate(text.split("\n"), 1):
        p.lineno = lineno
        p.feed(line)
        p.end_of_line(final=False)
        if p.error:
            err = ParseError(p.error)
            err.lineno = p.start_line or lineno
            raise err
    if p.state in (_QUOTE, _QUOTE_LIT, _WORD_LIT):
        if not p.lenient:
            err = ParseError("unbalanced quotes or trailing backslash at end of file")
            err.lineno = p.start_line
            raise err
        p.end_word()
    p.finish_line()
    if errors is not None:
        errors.extend(p.errors)
    return p.lines


class _Parser:
    """The character machine shared by `split_line` and `parse_text`."""

    def __init__(self, max_len):
        self.max_len = max_len
        self.state = _START
        self.word = []
        self.in_word = False
        self.words = []
        self.lines = []
        self.error = None
        self.lineno = 1
        self.start_line = 0
        self.lenient = False
        self.errors = []

    def add(self, ch):
        o = ord(ch)
        if o < 0x20 or o > 0x7F:
            return  # dropped, as NUT does
        if self.max_len and len(self.word) >= self.max_len:
            return
        self.word.append(ch)

    def end_word(self):
        if not self.start_line:
            self.start_line = self.lineno
        self.words.append("".join(self.word))
        self.word = []

    def finish_line(self):
        if self.words:
            self.lines.append((self.start_line, self.words))
        self.words = []
        self.start_line = 0

    def feed(self, text):
        for ch in text:
            st = self.state
            if st == _START:
                if ch == "#":
                    self.state = _COMMENT
                elif ch in " \t\r\x0b\x0c":
                    pass
                elif ch == "\\":
                    self.state = _WORD_LIT
                elif ch == '"':
                    self.state = _QUOTE
                elif ch == "=":
                    self.word = ["="]
                    self.end_word()
                else:
                    self.add(ch)
                    self.state = _WORD
            elif st == _WORD:
                if ch == "#":
                    self.end_word()
                    self.state = _COMMENT
                elif ch in " \t\r\x0b\x0c":
                    self.end_word()
                    self.state = _START
                elif ch == "=":
                    self.end_word()
                    self.word = ["="]
                    self.end_word()
                    self.state = _START
                elif ch == "\\":
                    self.state = _WORD_LIT
                else:
                    self.add(ch)
            elif st == _QUOTE:
                if ch == '"':
                    self.end_word()
                    self.state = _START
                elif ch == "\\":
                    self.state = _QUOTE_LIT
                elif ch == "#":
                    if not self.lenient:
                        self.error = "unescaped # inside quotes"
                        return
                    self.errors.append((self.start_line or self.lineno,
                                        "unescaped # inside quotes"))
                    self.word = []
                    self.words = []
                    self.start_line = 0
                    self.state = _START
                else:
                    self.add(ch)
            elif st == _QUOTE_LIT:
                self.add(ch)
                self.state = _QUOTE
            elif st == _WORD_LIT:
                self.add(ch)
                self.state = _WORD
            # _COMMENT: ignore the rest of the line

    def end_of_line(self, final):
        if self.error:
            return
        st = self.state
        if st == _WORD:
            self.end_word()
        elif st in (_QUOTE, _QUOTE_LIT, _WORD_LIT):
            if final:
                self.error = "unbalanced quotes" if st != _WORD_LIT else "trailing backslash"
                return
            # The logical line goes on: a quoted newline is dropped like
            # any control character; an escaped one joins the lines.
            if not self.start_line:
                self.start_line = self.lineno
            if st == _QUOTE_LIT:
                self.state = _QUOTE
            elif st == _WORD_LIT:
                self.state = _WORD
            return
        self.state = _START
        self.finish_line()
