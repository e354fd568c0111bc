# Core tests: plain asserts only, so they also run under MicroPython.
from _compat import raises
from nutapp.core.errors import ParseError
from nutapp.core.parseconf import parse_text, quote, split_line


def test_plain_words():
    assert split_line("GET VAR ups ups.status") == ["GET", "VAR", "ups", "ups.status"]
    assert split_line("  LIST   UPS  \r") == ["LIST", "UPS"]
    assert split_line("") == []


def test_quotes_and_escapes():
    assert split_line('SET VAR u v "a b"') == ["SET", "VAR", "u", "v", "a b"]
    assert split_line('x "a \\" b"') == ["x", 'a " b']
    assert split_line('x "a\\\\b"') == ["x", "a\\b"]
    assert split_line('x ""') == ["x", ""]
    assert split_line("x a\\ b") == ["x", "a b"]
    assert split_line('x "\\#"') == ["x", "#"]


def test_comment_outside_quotes():
    assert split_line("LIST UPS # a comment") == ["LIST", "UPS"]
    assert split_line("LIST UPS#comment") == ["LIST", "UPS"]
    assert split_line("# only a comment") == []


def test_hash_inside_quotes_is_an_error():
    e = raises(ParseError, split_line, 'SET VAR u v "a#b"')
    assert e.word == "INVALID-ARGUMENT"


def test_unbalanced_quotes_and_trailing_backslash():
    raises(ParseError, split_line, 'GET VAR "ups')
    raises(ParseError, split_line, "GET VAR ups\\")


def test_equals_is_its_own_word_unless_quoted():
    assert split_line("a=b") == ["a", "=", "b"]
    assert split_line('"a=b"') == ["a=b"]
    assert split_line("password = x") == ["password", "=", "x"]


def test_control_and_high_bytes_are_dropped():
    assert split_line("GET\x01 VAR\x7f ups") == ["GET", "VAR\x7f", "ups"]
    assert split_line("GET VAR \xe9ups") == ["GET", "VAR", "ups"]
    assert split_line('x "a\x02b"') == ["x", "ab"]


def test_word_and_count_limits():
    assert split_line("x " + "a" * 600) == ["x", "a" * 512]
    assert split_line('x "' + "b" * 600 + '"') == ["x", "b" * 512]
    raises(ParseError, split_line, " ".join(["w"] * 33))
    assert len(split_line(" ".join(["w"] * 32))) == 32


def test_quote_round_trip():
    for value in ['plain', 'a "quoted" value', "back\\slash", "hash # here", "", " lead"]:
        assert split_line('x "%s"' % quote(value)) == ["x", value]


def test_parse_text_line_numbers_and_continuations():
    text = '[a]\n  k = "v w"  # c\n\n  m = "multi\nline"\n  n = x\\\ny\n'
    lines = parse_text(text)
    assert lines[0] == (1, ["[a]"])
    assert lines[1] == (2, ["k", "=", "v w"])
    assert lines[2] == (4, ["m", "=", "multiline"])
    assert lines[3] == (6, ["n", "=", "xy"])


def test_parse_text_error_names_the_line():
    e = raises(ParseError, parse_text, 'a\nb\nc "x#y"\n')
    assert e.lineno == 3
    e = raises(ParseError, parse_text, 'a\nb "open\n')
    assert e.lineno == 2
