"""Property-based tests of the grammar (CPython only: hypothesis)."""

from hypothesis import given, settings, strategies as st

from nutapp.core.config import UpsConf, UpsdConf
from nutapp.core.errors import ConfigError, ParseError
from nutapp.core.parseconf import parse_text, quote, split_line
from nutapp.core.users import Users

printable = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80)
anychars = st.text(max_size=200)


@given(st.lists(printable, min_size=1, max_size=32))
def test_quoted_words_round_trip(words):
    line = " ".join('"%s"' % quote(w) for w in words)
    assert split_line(line) == words


@given(anychars)
def test_split_never_crashes_and_stays_within_limits(line):
    try:
        words = split_line(line)
    except ParseError as e:
        assert e.word == "INVALID-ARGUMENT"
        return
    assert len(words) <= 32
    for w in words:
        assert len(w) <= 512
        assert all(0x20 <= ord(c) <= 0x7F for c in w)


@given(st.binary(max_size=300))
def test_split_bytes_from_the_wire(data):
    try:
        split_line(data.decode("latin-1"))
    except ParseError:
        pass


@given(anychars)
@settings(max_examples=300)
def test_config_parsers_raise_only_config_errors(text):
    for parse in (UpsdConf.parse, UpsConf.parse, Users.parse):
        try:
            parse(text)
        except ConfigError as e:
            assert str(e)  # file:line and a message
            assert "\n" not in str(e)


key = st.from_regex(r"[a-z][a-z0-9._]{0,15}", fullmatch=True)


@given(st.dictionaries(key, printable, min_size=1, max_size=10))
def test_ups_conf_values_round_trip(options):
    options.pop("driver", None)
    options.pop("port", None)
    lines = ["[u]", "driver = dummy-ups", "port = x.dev"]
    lines += ['%s = "%s"' % (k, quote(v)) for k, v in options.items()]
    conf = UpsConf.parse("\n".join(lines))
    for k, v in options.items():
        assert conf.get("u").options[k] == v


@given(st.lists(st.lists(printable, min_size=1, max_size=5), max_size=10))
def test_parse_text_line_numbers_increase(lines):
    text = "\n".join(" ".join('"%s"' % quote(w) for w in ws) for ws in lines)
    out = parse_text(text)
    assert [n for n, _ in out] == sorted(n for n, _ in out)
    assert [ws for _, ws in out] == lines
