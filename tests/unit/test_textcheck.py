"""textcheck.read_quoted: the quoted-value reading Ganesha's config parser and `--fsal` share;
textcheck.LazyPattern: a regular expression compiled at its first use, matching as re.compile's."""
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ganesha_ha.textcheck import LazyPattern, read_quoted


def quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@given(st.text(), st.text(), st.text())
def test_a_quoted_value_reads_back_whatever_surrounds_it(before, value, after):
    text = before + quote(value) + after
    assert read_quoted(text, len(before)) == (value, len(before) + len(quote(value)))


@given(st.text(alphabet=st.characters(blacklist_characters='"')))
def test_an_unclosed_quote_is_none(rest):
    assert read_quoted('"' + rest, 0) is None


def test_a_trailing_backslash_does_not_close_or_escape_beyond_the_end():
    assert read_quoted('"abc\\', 0) is None
    assert read_quoted('"a\\"', 0) is None


PATTERNS = [r"[A-Za-z][A-Za-z0-9_]{0,31}", r"(0|[1-9][0-9]{0,9})", r"[^\n]*\n|[^\n]+\Z", r"\[([0-9a-f:.]+)\](/[0-9]{1,3})?"]


@pytest.mark.parametrize("pattern", PATTERNS)
@given(text=st.text(alphabet="aZ09_:.[]/\n -", max_size=20))
def test_a_lazy_pattern_answers_as_the_compiled_one(pattern, text):
    lazy, compiled = LazyPattern(pattern), re.compile(pattern)
    for method in ("fullmatch", "match", "search"):
        got, want = getattr(lazy, method)(text), getattr(compiled, method)(text)
        assert (got and (got.span(), got.groups())) == (want and (want.span(), want.groups()))
    assert lazy.findall(text) == compiled.findall(text)
    assert lazy.split(text, 1) == compiled.split(text, 1)
    assert lazy.sub("x", text) == compiled.sub("x", text)


def test_a_lazy_pattern_compiles_at_its_first_use_only():
    """Defining it compiles nothing (a bad pattern would not even fail yet); the first use
    compiles, and keeps the compiled method, so later calls do not pass through __getattr__."""
    bad = LazyPattern(r"(unclosed")
    with pytest.raises(re.error):
        bad.fullmatch("x")
    lazy = LazyPattern(rb"\\([0-3][0-7]{2})")
    assert "sub" not in vars(lazy)
    assert lazy.sub(b"-", b"a\\040b") == b"a-b"
    assert "sub" in vars(lazy) and vars(lazy)["sub"].__self__.pattern == rb"\\([0-3][0-7]{2})"
