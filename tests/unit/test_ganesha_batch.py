"""Several exports in one AddExport file (backends/ganesha_batch.py, pure): the file holds each
block as `render_export` renders it alone, and each of Ganesha's complaints goes to the block
whose lines it names, numbered as in that export's own file."""
import pytest
from hypothesis import given, strategies as st

from ganesha_ha.backends.ganesha_batch import (Batch, added_count, batchable, complaints, render_batch)
from ganesha_ha.backends.ganesha_conf import RenderOptions, render_export
from ganesha_ha.backends.ganesha_conf_parse import parse_config
from ganesha_ha.fsal import Fsal, parse_spec
from ganesha_ha.model import Export, GaneshaOptions, KnfsdOptions

FILE = "/run/gha/ganesha/u/exports-7-1.conf"


def export(i: int, clients=("127.0.0.1(rw)",), fsal: Fsal | None = None) -> Export:
    return Export(path=f"/d{i}" if fsal is not None and fsal.remote else f"d{i}", export_id=i, knfsd=KnfsdOptions(str(i)), pseudo=f"/d{i}", clients=clients,
                  ganesha=GaneshaOptions(fsal or Fsal("VFS")))


def located(line: int, text: str) -> str:
    return f"Config File ({FILE}:{line}): {text}"


def test_the_file_is_the_blocks_rendered_alone_in_order():
    exps = [export(7), export(8, ("127.0.0.1(rw)", "*.example.com(ro)")), export(9)]
    batch = render_batch(exps, "/mnt/v", RenderOptions())
    alone = [render_export(e, "/mnt/v") for e in exps]
    assert batch.text == "".join(alone)
    lines = batch.text.splitlines()
    for span, text in zip(batch.spans, alone):
        assert lines[span.first - 1:span.last] == text.splitlines()
    assert [b.get("Export_Id") for b in parse_config(batch.text)] == [["7"], ["8"], ["9"]]


def test_an_export_with_module_blocks_goes_alone():
    mem = export(7, fsal=parse_spec("MEM(Inode_Size=65536)"))
    assert not batchable(mem) and batchable(export(8))
    with pytest.raises(ValueError):
        render_batch([export(8), mem], "/mnt/v", RenderOptions())


def test_complaints_go_to_the_block_they_name_numbered_as_in_its_own_file():
    exps = [export(7), export(8, ("127.0.0.1(rw)", "nosuch.invalid(ro)")), export(9)]
    batch = render_batch(exps, "/mnt/v", RenderOptions())
    second = batch.spans[1]
    own = render_export(exps[1], "/mnt/v").splitlines()
    bad = next(n for n, text in enumerate(own, 1) if "nosuch.invalid" in text)
    reply = ("3 exports added. Errors found:\n"
             + located(second.first + bad - 1, "Client (nosuch.invalid) not found because Name or service not known")
             + "\n" + located(second.first + bad - 1, "Client (nosuch.invalid) not found because Name or service "
                                                       "not known") + "\n")
    per, unowned = batch.attribute(complaints(reply), FILE)
    assert per == {8: [f"line {bad}: Client (nosuch.invalid) not found because Name or service not known"]}
    assert unowned == [] and added_count(reply) == 3


def test_a_complaint_no_block_owns_is_kept_apart():
    batch = render_batch([export(7), export(8)], "/mnt/v", RenderOptions())
    last = batch.spans[-1].last
    text = "\n".join([located(last + 5, "Syntax error"), "Some line without a place",
                      "Config File (/elsewhere.conf:1): Unknown parameter (X)", located(1, "bad")])
    per, unowned = batch.attribute(text, FILE)
    assert per == {7: ["line 1: bad"]}
    assert unowned == ["Config File (" + FILE + f":{last + 5}): Syntax error", "Some line without a place",
                       "Config File (/elsewhere.conf:1): Unknown parameter (X)"]


def test_replies_and_errors_are_read():
    assert added_count("256 exports added") == 256
    assert added_count("2 exports added. Errors found:\nx") == 2
    assert added_count("Selected entries in f already active!!!") is None
    assert added_count("0 export entries in f added because (invalid param value) errors. Details:\n") is None
    assert complaints("1 exports added") == ""
    assert complaints("3 export entries in f added because (block validation) errors. Details:\nA\nB\n") == "\nA\nB\n"
    assert complaints("1 exports added. Errors found:\nC\n") == "\nC\n"


@given(st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=12), st.data())
def test_every_line_of_every_block_is_owned_by_that_block(clients_per_export, data):
    """Property: whatever the blocks' sizes, a complaint about any line of block k is block k's,
    with the line number it has in k's own file; nothing past the last block is owned."""
    hosts = ["127.0.0.1(rw)", "10.0.0.0/8(ro)", "*.example.com(rw)", "@ng(ro)"]
    exps = [export(i + 1, tuple(hosts[:n])) for i, n in enumerate(clients_per_export)]
    batch = render_batch(exps, "/mnt/v", RenderOptions())
    k = data.draw(st.integers(min_value=0, max_value=len(exps) - 1))
    span = batch.spans[k]
    line = data.draw(st.integers(min_value=span.first, max_value=span.last))
    per, unowned = batch.attribute(located(line, "x"), FILE)
    assert per == {exps[k].export_id: [f"line {line - span.first + 1}: x"]} and unowned == []
    assert isinstance(batch, Batch) and batch.owner(batch.spans[-1].last + 1) is None


VARIANTS = [dict(clients=("127.0.0.1(rw)",)), dict(clients=("127.0.0.1(rw)",), access="RO"),
            dict(clients=("127.0.0.1(rw)",), squash="all_squash"), dict(clients=("127.0.0.1(ro,anonuid=7)",)),
            dict(clients=("127.0.0.1(rw)", "*.example.com(ro)")), dict(clients=("127.0.0.1(rw)",), access="None"),
            dict(clients=("127.0.0.1(rw)",), ganesha=GaneshaOptions(parse_spec("NULL(VFS)")))]


@given(st.lists(st.sampled_from(range(len(VARIANTS))), min_size=1, max_size=12),
       st.sampled_from([RenderOptions(), RenderOptions(protocols="3, 4", transports="TCP, UDP")]))
def test_blocks_sharing_a_tail_render_in_a_file_as_each_alone(picks, opts):
    """render_batch renders the part of a block after Pseudo once per distinct clients, access,
    squash, FSAL and options: whatever the mix, each block is the one render_export gives alone."""
    exps = [Export(path=f"d{i}", export_id=i + 1, knfsd=KnfsdOptions(str(i + 1)), pseudo=f"/d{i}", **VARIANTS[v])
            for i, v in enumerate(picks)]
    assert render_batch(exps, "/mnt/v", opts).text == "".join(render_export(e, "/mnt/v", opts) for e in exps)
