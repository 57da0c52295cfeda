"""rmtab, knfsd's recovery store: the pure line rules (rmtab_lines) and the store's files
(rmtab.py) in a plain temp dir standing for /var/lib/nfs (no root, no exportfs)."""
from __future__ import annotations

import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ganesha_ha.context import VolumeContext
from ganesha_ha.backends.knfsd import KnfsdBackend
from ganesha_ha.errors import ServerUnavailableError
from ganesha_ha.nfspath import path_is_under
from ganesha_ha.recovery.rmtab_lines import (merge_rmtab, parse_rmtab_line, parse_saved_rmtab,
                                             rebase_rmtab_lines, remove_volume_lines,
                                             render_saved_rmtab, select_volume_lines)

from knfsd_ns import REAL_EXPORTFS, make_settings

MP = "/srv/vol1"


# ---- rmtab ---------------------------------------------------------------------------------------
def test_parse_rmtab_lines():
    assert parse_rmtab_line("10.0.0.5:/srv/vol1/d1:0x00000002").key == ("10.0.0.5", "/srv/vol1/d1")
    assert parse_rmtab_line("fe80;;1:/srv/vol1:0x00000001").client == "fe80::1"
    e = parse_rmtab_line(r"h:/srv/vol1/a\040b/c:d:0x0000000a")
    assert (e.path, e.count) == ("/srv/vol1/a b/c:d", 10)
    assert parse_rmtab_line("h:/srv/vol1/x").count == 1
    assert parse_rmtab_line("garbage") is None and parse_rmtab_line("h:relative:0x1") is None


rm_clients = st.one_of(st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(lambda a: str(a).replace(":", ";")),
                       st.from_regex(r"[a-z]{1,8}", fullmatch=True))
rm_paths = st.tuples(st.sampled_from(["/srv/vol1", "/srv/vol10", "/srv/vol2", "/other"]),
                     st.sampled_from(["", "/d1", "/d2/", "/a b", r"/a\040b", "/x:y", "//d1"])).map("".join)
rm_lines = st.one_of(
    st.builds(lambda c, p, n: f"{c}:{p}:0x{n:08x}", rm_clients, rm_paths, st.integers(1, 5)),
    st.sampled_from(["garbage", "h:relative:0x1"]))
rm_texts = st.lists(rm_lines, max_size=12).map(lambda ls: "".join(ln + "\n" for ln in ls))


def _foreign(text, mp=MP):
    return [ln for ln in text.splitlines() if not ((e := parse_rmtab_line(ln)) and path_is_under(e.path, mp))]


def _keys(lines):
    return {parse_rmtab_line(ln).key for ln in lines}


@given(rm_texts)
def test_remove_keeps_every_other_line_byte_for_byte(host):
    out = remove_volume_lines(host, MP)
    assert out.splitlines() == _foreign(host)
    assert not select_volume_lines(out, MP)


@given(rm_texts, st.lists(rm_lines, max_size=8))
def test_merge_only_adds_and_is_idempotent(host, saved):
    out = merge_rmtab(host, saved, MP)
    assert out.startswith(host)                          # nothing of the host file changes
    assert _foreign(out) == _foreign(host)               # other volumes untouched
    assert merge_rmtab(out, saved, MP) == out
    vol = select_volume_lines(out, MP)
    assert _keys(vol) == _keys(select_volume_lines(host, MP)) | _keys(select_volume_lines("\n".join(saved), MP))
    added = out[len(host):].splitlines()
    assert len(_keys(added)) == len(added)               # no duplicates added


@given(rm_texts)
def test_save_clear_restore_roundtrip(host):
    saved_at, saved = parse_saved_rmtab(render_saved_rmtab(select_volume_lines(host, MP), MP))
    assert saved_at == MP
    cleared = remove_volume_lines(host, MP)
    restored = merge_rmtab(cleared, saved, MP)
    assert _keys(select_volume_lines(restored, MP)) == _keys(select_volume_lines(host, MP))
    assert _foreign(restored) == _foreign(host)


@given(rm_texts)
def test_rebase_moves_lines_between_mount_points(host):
    lines = select_volume_lines(host, MP)
    moved = rebase_rmtab_lines(lines, MP, "/mnt/other place")
    assert {(c, p.replace(MP, "/mnt/other place", 1)) for c, p in _keys(lines)} == _keys(moved)
    back = rebase_rmtab_lines(moved, "/mnt/other place", MP)
    assert _keys(back) == _keys(lines)


def test_saved_file_format():
    text = render_saved_rmtab(["10.0.0.5:/srv/a b/d1:0x00000001"], "/srv/a b")
    assert text == "# ganesha-ha knfsd rmtab v1 mountpoint=/srv/a\\040b\n10.0.0.5:/srv/a b/d1:0x00000001\n"
    assert parse_saved_rmtab(text) == ("/srv/a b", ["10.0.0.5:/srv/a b/d1:0x00000001"])


@pytest.mark.parametrize("host,expected", [
    ("", "c:/srv/vol1/d1:0x00000001\n"),
    ("x:/other:0x1", "x:/other:0x1\nc:/srv/vol1/d1:0x00000001\n"),         # no final newline
    ("c:/srv/vol1/d1/:0x00000005\n", "c:/srv/vol1/d1/:0x00000005\n"),      # same key: host wins
])
def test_merge_examples(host, expected):
    assert merge_rmtab(host, ["c:/srv/vol1/d1:0x00000001", "c:/srv/vol2/d1:0x1"], MP) == expected


# ---- rmtab ------------------------------------------------------------------------------------------
HOST_RMTAB = (
    "10.0.0.5:/srv/vol1/d1:0x00000002\n"
    "fe80;;1:/srv/vol1:0x00000001\n"
    "10.0.0.6:/srv/vol10/d1:0x00000001\n"          # another volume: a prefix, not a child
    "10.0.0.7:/srv/vol1/a\\040b/sub:0x00000001\n"
    "garbage line\n"
    "10.0.0.8:/srv/vol2/x:0x00000003\n"
)
OURS = ["10.0.0.5:/srv/vol1/d1:0x00000002", "fe80;;1:/srv/vol1:0x00000001",
        "10.0.0.7:/srv/vol1/a\\040b/sub:0x00000001"]
FOREIGN = "10.0.0.6:/srv/vol10/d1:0x00000001\ngarbage line\n10.0.0.8:/srv/vol2/x:0x00000003\n"


@pytest.fixture
def rm(tmp_path):
    """The knfsd backend's store with a plain temp dir as /var/lib/nfs (no exportfs, no namespace)."""
    state = tmp_path / "var-lib-nfs"
    state.mkdir()
    (state / "rmtab").write_text(HOST_RMTAB)
    (state / "rmtab").chmod(0o644)
    vstate = tmp_path / "volume-state"
    vstate.mkdir(mode=0o700)
    ctx = VolumeContext(mountpoint=Path("/srv/vol1"), state_dir=vstate, volume_uuid="u1")
    store = KnfsdBackend(make_settings(REAL_EXPORTFS, state_dir=state, runtime_dir=tmp_path / "run")).recovery_stores(ctx)[0]
    return store, state, ctx


def test_rmtab_save_clear_restore(rm):
    store, state, ctx = rm
    assert store.save(ctx) is True
    saved = (ctx.state_dir / "rmtab").read_text().splitlines()
    assert saved[0] == "# ganesha-ha knfsd rmtab v1 mountpoint=/srv/vol1" and saved[1:] == OURS
    assert store.save(ctx) is False                       # unchanged: not rewritten

    store.clear(ctx)
    assert (state / "rmtab").read_text() == FOREIGN
    assert stat.S_IMODE((state / "rmtab").stat().st_mode) == 0o644
    assert list(state.glob(".rmtab.tmp-*")) == []

    assert store.restore(ctx) == 3
    assert (state / "rmtab").read_text() == FOREIGN + "".join(ln + "\n" for ln in OURS)
    ino = (state / "rmtab").stat().st_ino
    assert store.restore(ctx) == 3                        # idempotent: no duplicates, no write
    assert (state / "rmtab").stat().st_ino == ino
    assert (state / ".rmtab.lock").exists()


def test_rmtab_restore_keeps_live_counts_and_rebases(rm, tmp_path):
    store, state, ctx = rm
    store.save(ctx)
    (state / "rmtab").write_text("10.0.0.5:/srv/vol1/d1:0x00000009\n")
    store.restore(ctx)
    lines = (state / "rmtab").read_text().splitlines()
    assert lines[0] == "10.0.0.5:/srv/vol1/d1:0x00000009" and len(lines) == 3

    moved = VolumeContext(mountpoint=Path("/mnt/vol one"), state_dir=ctx.state_dir, volume_uuid="u1")
    (state / "rmtab").write_text("")
    assert store.restore(moved) == 3
    assert sorted((state / "rmtab").read_text().splitlines()) == sorted([
        "10.0.0.5:/mnt/vol one/d1:0x00000002", "fe80;;1:/mnt/vol one:0x00000001",
        "10.0.0.7:/mnt/vol one/a b/sub:0x00000001"])


def test_rmtab_waits_for_the_nfs_utils_lock_with_a_bound(rm):
    store, state, ctx = rm
    store.save(ctx)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time\n"
         f"fd = os.open({str(state / '.rmtab.lock')!r}, os.O_RDWR | os.O_CREAT, 0o600)\n"
         "fcntl.lockf(fd, fcntl.LOCK_EX)\nprint('locked', flush=True)\ntime.sleep(30)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        store.lock_timeout = 0.3
        t0 = time.monotonic()
        with pytest.raises(ServerUnavailableError, match=r"\.rmtab\.lock stayed locked for 0\.3 s"):
            store.clear(ctx)
        assert time.monotonic() - t0 < 2
    finally:
        holder.kill()
        holder.wait(5)
    store.clear(ctx)
    assert (state / "rmtab").read_text() == FOREIGN
