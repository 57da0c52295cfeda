"""fsal.py: an export's FSAL as a record: validation, round trips, and what reaches a config."""
from __future__ import annotations

import pytest
from hypothesis import event, given, strategies as st

from ganesha_ha.backends.ganesha_conf import check_renderable, render_export
from ganesha_ha.backends.ganesha_conf_parse import fsal_from_block, parse_config
from ganesha_ha.errors import ValidationError
from ganesha_ha.fsal import Fsal
from ganesha_ha.model import Export, GaneshaOptions, KnfsdOptions

from strategies import nasty_text


def export_with(fsal: Fsal) -> Export:
    return Export(path="d", export_id=3, knfsd=KnfsdOptions("3"), pseudo="/d", clients=("*",),
                  ganesha=GaneshaOptions(fsal))


@pytest.mark.parametrize("kwargs,word", [
    ({"name": "V FS"}, "FSAL name"), ({"name": ""}, "FSAL name"), ({"name": "VFS;"}, "FSAL name"),
    ({"options": (("a b", "1"),)}, "option name"), ({"options": (("Name", "x"),)}, "option name"),
    ({"options": (("k", "1"), ("K", "2"))}, "given twice"), ({"options": (("k", "a\nb"),)}, "control"),
    ({"options": (("k", "a\\"),)}, "backslash"), ({"options": (("k",),)}, "key and a value"),
    ({"stacked": "VFS"}, "must be an FSAL"),
    ({"stacked": Fsal("A", stacked=Fsal("B", stacked=Fsal("C", stacked=Fsal("D"))))}, "stacked"),
])
def test_bad_fsals_name_the_problem(kwargs, word):
    with pytest.raises(ValidationError, match=word):
        Fsal(**kwargs)


def test_shapes():
    f = Fsal("NULL", {"Key": "v"}, Fsal("VFS"))
    assert f.options == (("Key", "v"),) and str(f) == "NULL(Key=v) on VFS"
    assert Fsal.from_dict(f.to_dict()) == f and Fsal.from_dict({"name": "VFS"}) == Fsal()
    assert render_export(export_with(Fsal()), "/v").count("    FSAL { Name = VFS; }\n") == 1


def test_options_are_refused_for_ganesha_until_each_fsal_has_a_schema():
    check_renderable(export_with(Fsal("NULL", stacked=Fsal("VFS"))), "/v")
    for fsal in (Fsal("VFS", (("k", "v"),)), Fsal("NULL", stacked=Fsal("VFS", (("k", "v"),)))):
        with pytest.raises(ValidationError, match="options are not supported yet"):
            check_renderable(export_with(fsal), "/v")


keys = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,12}", fullmatch=True).filter(lambda k: k.lower() != "name")
layers = st.lists(st.tuples(st.sampled_from(["VFS", "MEM", "NULL"]), st.dictionaries(keys, nasty_text, max_size=3)),
                  min_size=1, max_size=3)


@given(layers)
def test_a_rendered_fsal_block_parses_back_to_the_same_record(layers):
    """Whatever option values the record accepts (quotes, braces, '#', ';'...) stay values:
    the EXPORT block parses back to one block whose FSAL is the same record."""
    fsal = None
    try:
        for name, options in reversed(layers):
            fsal = Fsal(name, tuple(options.items()), fsal)
    except ValidationError:
        event("refused")
        return  # refused with a clear error: nothing to render
    event(f"{fsal.depth()} deep, {sum(len(o) for _, o in layers)} options")
    (block,) = parse_config(render_export(export_with(fsal), "/v"))
    (fsal_block,) = block.sub("FSAL")
    assert fsal_from_block(fsal_block) == fsal
