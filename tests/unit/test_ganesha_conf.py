"""Rendering EXPORT blocks: parse back what we render, and no value can inject config (pure)."""
from hypothesis import given, settings, strategies as st

from ganesha_ha.backends.ganesha_conf import check_renderable, quote, render_export
from ganesha_ha.backends.ganesha_conf_parse import export_from_block, parse_config
from ganesha_ha.errors import ValidationError
from ganesha_ha.clientspec import ClientSpec
from ganesha_ha.model import Export, KnfsdOptions

from strategies import good_host, good_option, name_text


def semantics(e: Export):
    return sorted((c.host, e.client_access(c), c.squash(e.squash), c.option_value("anonuid"),
                   c.option_value("anongid"), c.option_value("sec")) for c in e.clients)


def test_render_shape():
    e = Export(path="a b/c", export_id=12, knfsd=KnfsdOptions("5"), pseudo="/p", clients=("127.0.0.1(rw,no_root_squash)",
               "*.example.com(ro)"), access="RW")
    text = render_export(e, "/mnt/vol")
    assert 'Path = "/mnt/vol/a b/c";' in text
    assert "Access_Type = None;" in text.split("CLIENT")[0], "export-level access must be None"
    assert "Clients = 127.0.0.1;" in text and "Clients = *.example.com;" in text
    assert "Squash = No_Root_Squash;" in text


def test_backslash_is_refused_for_ganesha():
    # a trailing backslash ran Ganesha's quoted string into the next line (found against 4.3)
    import pytest

    for kw in ({"path": "h/\u00b5\\", "pseudo": "/p"}, {"path": "h", "pseudo": "/p\\"}):
        e = Export(export_id=1, knfsd=KnfsdOptions("1"), clients=("*",), **kw)
        with pytest.raises(ValidationError, match="backslash"):
            check_renderable(e, "/mnt/v")


def test_quote_escapes_quotes_and_backslashes():
    assert quote('a"b\\c') == '"a\\"b\\\\c"'
    try:
        quote("a\nb")
    except ValidationError:
        pass
    else:
        raise AssertionError("newline accepted")


@given(dirname=name_text, pseudo_tail=name_text,
       hosts=st.lists(good_host, min_size=1, max_size=3, unique=True),
       opts=st.lists(good_option, max_size=3, unique=True), access=st.sampled_from(["RW", "RO", "None"]),
       squash=st.sampled_from(["root_squash", "no_root_squash", "all_squash"]))
@settings(max_examples=1000)
def test_rendered_block_parses_back_to_the_same_meaning(dirname, pseudo_tail, hosts, opts, access, squash):
    try:
        clients = tuple(ClientSpec(h, tuple(opts)) for h in hosts)
        if len({c.host for c in clients}) != len(clients):
            return
        e = Export(path=f"top/{dirname}", export_id=99, knfsd=KnfsdOptions("1"), pseudo=f"/ps/{pseudo_tail}",
                   clients=clients, access=access, squash=squash)
    except ValidationError:
        return  # refused with a clear error: fine
    text = render_export(e, "/mnt/v")
    blocks = parse_config(text)
    assert len(blocks) == 1 and blocks[0].name == "EXPORT", "a value injected a block"
    block = blocks[0]
    assert sorted(k for k, _ in block.params) == sorted(
        ["Export_Id", "Path", "Pseudo", "Access_Type", "Squash", "Protocols", "Transports"])
    assert len(block.sub("CLIENT")) == len(e.clients)
    back = export_from_block(block, "/mnt/v", "1")
    assert back.path == e.path and back.pseudo == e.pseudo and back.export_id == e.export_id
    assert semantics(back) == semantics(e)


@given(st.lists(st.sampled_from(["", "srv", "v", ".", "a b"]), max_size=4).map(lambda p: "/" + "/".join(p)),
       st.lists(st.sampled_from(["d", "x y", "é"]), max_size=3).map("/".join))
def test_export_path_is_the_volume_path_joined(mountpoint, rel):
    """export_path joins strings (it runs for every export, often); the same as PurePosixPath."""
    from pathlib import PurePosixPath

    from ganesha_ha.backends.ganesha_conf import export_path

    e = Export(path=rel, export_id=1, knfsd=KnfsdOptions("1"), pseudo="/p", clients=("*",))
    assert export_path(e, mountpoint) == (str(PurePosixPath(mountpoint) / rel) if rel else
                                          str(PurePosixPath(mountpoint)))
