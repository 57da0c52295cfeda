"""textcheck.read_quoted: the quoted-value reading Ganesha's config parser and `--fsal` share."""
from hypothesis import given
from hypothesis import strategies as st

from ganesha_ha.textcheck import read_quoted


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
