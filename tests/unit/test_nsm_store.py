"""The NSM store (recovery/statd_records.py, recovery/nsm.py) and the volume's NFSv4 clients
(recovery/ganesha_records.py select_clients): statd's record format, which records are a
volume's, the state number, and save/restore/clear against real directories.

The records here are in the format statd wrote in the measurements of the research notes
(docs/research/clients-facts.md 3.2); tests/server/test_nsm_notify.py has real statd write them.
The TCP table the stores read is given as a file in proc(5)'s format (`proc_net`), and
`linux_net.tcp_table` is checked against a real loopback connection.
"""
from __future__ import annotations

import json
import os
import socket
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from ganesha_ha import linux_net
from ganesha_ha.context import VolumeContext
from ganesha_ha.errors import RegistryError
from ganesha_ha.recovery import peers
from ganesha_ha.recovery.ganesha_records import GaneshaRecordStore, record_address, select_clients
from ganesha_ha.recovery.nsm import NsmStore, dir_state, read_record_dir, traversable
from ganesha_ha.recovery.statd_records import (check_record, client_address, next_state, normal_address,
                                               pack_state, parse_record, select_records, unpack_state,
                                               valid_record_name)

FIP = "10.213.40.101"


def record(client: str, node: str = "node-a") -> str:
    """A statd record line as Ganesha 4.3's SM_MON makes statd write it (measured)."""
    return f"0100007f 000186b5 00000004 00000010 {'0' * 32} {client} {node}\n"


def hexaddr(addr: str) -> str:
    """An address as /proc/net/tcp{,6} prints it: 32-bit words in host byte order."""
    packed = socket.inet_pton(socket.AF_INET6 if ":" in addr else socket.AF_INET, addr)
    return "".join(f"{struct.unpack('=I', packed[i:i + 4])[0]:08X}" for i in range(0, len(packed), 4))


def tcp_line(local: str, lport: int, remote: str, rport: int, state: int = 1) -> str:
    return (f"   0: {hexaddr(local)}:{lport:04X} {hexaddr(remote)}:{rport:04X} {state:02X} "
            "00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 20 4 30 10 -1")


HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode"


class FakeNet:
    """A proc_net directory with tcp and tcp6 tables of the connections given."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.set([])

    def set(self, conns: list[tuple[str, int, str, int]]) -> None:
        v4 = [tcp_line(*c) for c in conns if ":" not in c[0]]
        v6 = [tcp_line(*c) for c in conns if ":" in c[0]]
        (self.root / "tcp").write_text("\n".join([HEADER, *v4]) + "\n")
        (self.root / "tcp6").write_text("\n".join([HEADER, *v6]) + "\n")
        peers.forget()


# ---- statd's record format ------------------------------------------------------------------

def test_the_measured_record_parses():
    text = record("127.0.0.5", "gha-cf-node")
    assert parse_record(text) == [("127.0.0.5", "gha-cf-node")]
    check_record("127.0.0.5", text)
    assert client_address("127.0.0.5", text) == "127.0.0.5"
    assert client_address("client1.example", record("client1.example")) is None
    assert client_address("10.0.0.7", record("client1.example")) == "10.0.0.7"


@pytest.mark.parametrize("name,text", [
    ("../etc", record("10.0.0.5")), ("a b", record("10.0.0.5")), (".hidden", record("10.0.0.5")),
    ("", record("10.0.0.5")), ("10.0.0.5", "garbage\n"), ("10.0.0.5", ""),
    ("10.0.0.5", record("10.0.0.5").rstrip("\n")), ("10.0.0.5", record("10.0.0.5") + "extra words here\n"),
    ("x" * 1025, record("10.0.0.5")),
])
def test_what_statd_cannot_have_written_is_refused(name, text):
    with pytest.raises(RegistryError):
        check_record(name, text)


@hsettings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_a_valid_record_name_stays_in_its_directory(name):
    if valid_record_name(name):
        assert "/" not in name and name not in (".", "..") and not name.startswith(".")
        assert os.path.basename(name) == name and name.split() == [name]


@pytest.mark.parametrize("text,addr", [("::ffff:10.0.0.5", "10.0.0.5"), ("10.0.0.5", "10.0.0.5"),
                                       ("fd00::5", "fd00::5"), ("FD00:0::5", "fd00::5"), ("[fd00::5]", "fd00::5"),
                                       ("client1", None), ("", None)])
def test_addresses_are_compared_in_one_spelling(text, addr):
    assert normal_address(text) == addr


# ---- which records are the volume's ---------------------------------------------------------

A, B, C = "10.0.0.5", "10.0.0.6", "10.0.0.7"


def test_a_client_connected_to_the_floating_ip_is_the_volumes():
    node = {A: record(A), B: record(B)}
    assert select_records(node, {}, {}, (), {A}) == {A: record(A)}


def test_a_client_of_the_last_save_stays_while_it_keeps_its_record_idle():
    node = {A: record(A), B: record(B)}
    assert select_records(node, {A: record(A)}, {}, (), set()) == {A: record(A)}


def test_records_a_ganesha_restart_wiped_are_kept():
    """SM_UNMON_ALL at Ganesha's start empties sm/: the clients still hold their locks."""
    assert select_records({}, {A: record(A), B: record(B)}, {}, (), set()) == {A: record(A), B: record(B)}


def test_a_connected_client_without_a_record_unlocked():
    assert select_records({}, {A: record(A), B: record(B)}, {}, (), {A}) == {B: record(B)}


def test_a_restored_client_that_answered_and_did_not_reclaim_is_done():
    assert select_records({}, {A: record(A), B: record(B)}, {B: record(B)}, {A, B}, set()) == {B: record(B)}


def test_after_the_reclaim_the_new_nodes_record_is_kept():
    """The client reclaimed on this node: its new record names this node (my_name)."""
    ours = record(A, "node-b")
    assert select_records({A: ours}, {A: record(A)}, {}, {A}, set()) == {A: ours}


def test_a_name_that_is_no_address_follows_its_file_name():
    named = record("client1.example")
    assert select_records({"10.0.0.9": named}, {}, {}, (), {"10.0.0.9"}) == {"10.0.0.9": named}
    assert select_records({"client1.example": named}, {}, {}, (), {"10.0.0.9"}) == {}


names = st.sampled_from([A, B, C, "10.0.0.8", "fd00::5"])
maps = st.dictionaries(names, st.sampled_from(["node-a", "node-b"]).map(lambda n: n), max_size=4)


@hsettings(max_examples=400, deadline=None)
@given(maps, maps, maps, st.sets(names), st.sets(names))
def test_selection_rules_hold_for_any_state(node, previous, pending, restored, connected):
    node = {k: record(k, v) for k, v in node.items()}
    previous = {k: record(k, v) for k, v in previous.items()}
    pending = {k: record(k, v) for k, v in pending.items()}
    out = select_records(node, previous, pending, restored, connected)
    assert set(out) <= set(node) | set(previous) | set(pending)
    assert set(pending) <= set(out), "an undelivered notification is never dropped"
    for name in node:
        if name in connected or name in previous:
            assert out[name] == node[name], "a connected or known client's live record is kept as it is now"
        elif name not in pending:
            assert name not in out, "another volume's client is not this volume's"
    for name in set(previous) - set(node) - set(pending):
        assert (name in out) == (name not in connected and name not in restored)


# ---- NSM state numbers ------------------------------------------------------------------------

@given(st.lists(st.integers(min_value=0, max_value=2 ** 31 - 4), max_size=4))
def test_the_next_state_is_odd_and_above_everything_seen(seen):
    n = next_state(*seen)
    assert n % 2 == 1 and all(n > s for s in seen) and n >= 3
    assert unpack_state(pack_state(n)) == n


def test_state_file_format_is_statds():
    assert pack_state(3) == struct.pack("=i", 3) and len(pack_state(3)) == 4
    assert unpack_state(None) == 0 and unpack_state(b"xx") == 0
    assert next_state(0, 0) == 3 and next_state(3) == 5 and next_state(4) == 7
    assert next_state(2 ** 31 - 1) == 3


# ---- the TCP table and local addresses --------------------------------------------------------

def test_tcp_table_lines_and_mapped_addresses():
    text = "\n".join([HEADER, tcp_line("10.213.40.101", 2049, "10.213.40.10", 879),
                      tcp_line("::ffff:10.213.40.101", 2049, "::ffff:10.213.40.11", 700),
                      tcp_line("fd00::1", 2049, "fd00::10", 1000, 0x0A), "garbage line"])
    assert linux_net.parse_tcp_table(text) == [
        ("10.213.40.101", 2049, "10.213.40.10", 879, 1),
        ("::ffff:10.213.40.101", 2049, "::ffff:10.213.40.11", 700, 1),
        ("fd00::1", 2049, "fd00::10", 1000, 10)]


def test_the_real_table_shows_a_real_connection():
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        with socket.create_connection(srv.getsockname()) as cli:
            conn, _ = srv.accept()
            with conn:
                peers.forget()
                port = srv.getsockname()[1]
                assert cli.getsockname()[0] in peers.connected_peers("127.0.0.1", port)
                assert not peers.connected_peers("127.0.0.1", port + 1 if port < 65535 else 1)


def test_local_addresses_from_fib_trie():
    text = ("Local:\n  +-- 0.0.0.0/0 3 0 5\n     +-- 127.0.0.0/8 2 0 2\n        +-- 127.0.0.0/31 1 0 0\n"
            "           |-- 127.0.0.0\n              /8 host LOCAL\n           |-- 127.0.0.1\n"
            "              /32 host LOCAL\n        |-- 127.255.255.255\n           /32 link BROADCAST\n"
            "     |-- 10.213.40.101\n        /32 host LOCAL\n")
    assert linux_net.parse_fib_trie_locals(text) == {"127.0.0.1", "10.213.40.101"}
    assert "127.0.0.1" in linux_net.local_addresses()


# ---- the store against directories -----------------------------------------------------------

@pytest.fixture
def nsm(tmp_path):
    statd = tmp_path / "statd"
    (statd / "sm").mkdir(parents=True)
    net = FakeNet(tmp_path / "net")
    store = NsmStore(statd, tmp_path / "run" / "nsm", proc_net=str(net.root))
    vol = tmp_path / "vol-state"
    vol.mkdir(mode=0o700)
    ctx = VolumeContext(mountpoint=tmp_path, state_dir=vol, volume_uuid="u1", ip=FIP)
    return store, ctx, statd, net


def test_save_copies_the_clients_of_the_floating_ip_only(nsm):
    store, ctx, statd, net = nsm
    (statd / "sm" / A).write_text(record(A))
    (statd / "sm" / B).write_text(record(B))
    (statd / "sm" / "not-a-record").write_text("hello\n")
    net.set([(FIP, 2049, A, 700), ("10.213.40.5", 2049, B, 701), (FIP, 22, C, 5000, 0x0A)])
    assert store.save(ctx) is True
    assert json.loads((ctx.state_dir / "nsm.json").read_text()) == {"records": {A: record(A)}}
    assert store.save(ctx) is False, "written only on change"
    net.set([])
    (statd / "sm" / A).unlink()     # a Ganesha restart: statd's records are gone
    assert store.save(ctx) is False and store.saved(ctx) == {A: record(A)}


def test_nothing_is_kept_without_a_floating_ip(nsm):
    store, ctx, statd, net = nsm
    (statd / "sm" / A).write_text(record(A))
    net.set([(FIP, 2049, A, 700)])
    bare = VolumeContext(mountpoint=ctx.mountpoint, state_dir=ctx.state_dir, volume_uuid="u1")
    assert store.save(bare) is False and store.restore(bare) == 0 and store.notify_dir(bare) is None
    assert not (ctx.state_dir / "nsm.json").exists()


def test_restore_fills_the_volumes_notify_directory_never_statds(nsm):
    store, ctx, statd, net = nsm
    (statd / "sm" / A).write_text(record(A))
    net.set([(FIP, 2049, A, 700)])
    store.save(ctx)
    store.save_state(ctx, 7)
    before = sorted(os.listdir(statd / "sm"))
    assert store.restore(ctx) == 1
    d = store.notify_dir(ctx)
    assert d == store.notify_root / FIP
    assert read_record_dir(d / "sm") == {A: record(A)} and os.listdir(d / "sm.bak") == []
    assert dir_state(d) == 7 and sorted(os.listdir(statd / "sm")) == before
    assert json.loads((d / "restored.json").read_text()) == [A]
    assert (os.stat(d / "sm" / A).st_mode & 0o777) == 0o600
    # a second volume's directory is its own
    other = VolumeContext(mountpoint=ctx.mountpoint, state_dir=ctx.state_dir, volume_uuid="u2", ip="10.213.40.102")
    assert store.notify_dir(other) != d
    store.clear(ctx)
    assert not d.exists()


def test_pending_notifications_travel_on(nsm):
    """Restored, not yet answered: a further move must still notify the client."""
    store, ctx, statd, net = nsm
    store.save_state(ctx, 5)
    (ctx.state_dir / "nsm.json").write_text(json.dumps({"records": {A: record(A), B: record(B)}}))
    assert store.restore(ctx) == 2
    d = store.notify_dir(ctx)
    os.rename(d / "sm" / A, d / "sm.bak" / A)     # sm-notify retired both, A not answered yet
    (d / "sm" / B).unlink()                       # B answered, did not reclaim
    assert store.save(ctx) is True
    assert store.saved(ctx) == {A: record(A)}


@pytest.mark.parametrize("content", ['{"records": {"../x": "y"}}', '{"records": []}', "not json",
                                     '{"records": {"10.0.0.5": "bad line\\n"}}'])
def test_a_corrupt_copy_is_an_error_not_a_notification(nsm, content):
    store, ctx, statd, net = nsm
    (ctx.state_dir / "nsm.json").write_text(content)
    with pytest.raises(RegistryError):
        store.restore(ctx)
    assert not (store.notify_root / FIP / "sm").exists()


# ---- the volume's NFSv4 clients ---------------------------------------------------------------

def test_record_names_carry_the_client_address():
    assert record_address("::ffff:10.0.0.5-(9:gha-cf-c1)") == "10.0.0.5"
    assert record_address("fd00::5-(28:Linux NFSv4.1 client.example)") == "fd00::5"
    assert record_address("no-address-here") is None


def test_select_clients_keeps_connected_known_and_unreadable():
    names = {"::ffff:10.0.0.5-(2:c1)", "::ffff:10.0.0.6-(2:c2)", "::ffff:10.0.0.7-(2:c3)", "odd"}
    assert select_clients(names, {"::ffff:10.0.0.7-(2:c3)"}, {"10.0.0.5"}) == {
        "::ffff:10.0.0.5-(2:c1)", "::ffff:10.0.0.7-(2:c3)", "odd"}


def test_the_ganesha_store_copies_only_the_volumes_clients(tmp_path):
    root = tmp_path / "recovery"
    node = root / "v4recov" / "node0"
    for name in ("::ffff:10.0.0.5-(2:c1)", "::ffff:10.0.0.6-(2:c2)"):
        (node / name).mkdir(parents=True)
    net = FakeNet(tmp_path / "net")
    store = GaneshaRecordStore(root, "v4recov", nfs_port=2049, proc_net=str(net.root))
    vol = tmp_path / "state"
    vol.mkdir(mode=0o700)
    ctx = VolumeContext(mountpoint=tmp_path, state_dir=vol, volume_uuid="u1", ip=FIP)
    net.set([("::ffff:" + FIP, 2049, "::ffff:10.0.0.5", 800), ("::ffff:" + FIP, 875, "::ffff:10.0.0.6", 801)])
    assert store.save(ctx)
    assert [r["path"] for r in store.saved_records(ctx)] == ["::ffff:10.0.0.5-(2:c1)"]
    net.set([])   # idle at this monitor: still the volume's while Ganesha keeps its record
    assert not store.save(ctx)
    (node / "::ffff:10.0.0.5-(2:c1)").rmdir()   # expired or destroyed
    assert store.save(ctx) and store.saved_records(ctx) == []
    bare = VolumeContext(mountpoint=tmp_path, state_dir=vol, volume_uuid="u1")
    assert store.save(bare) and [r["path"] for r in store.saved_records(bare)] == ["::ffff:10.0.0.6-(2:c2)"]


def test_a_notify_root_statd_cannot_reach_keeps_sm_notify_root():
    """sm-notify deletes answered records by absolute path after dropping to sm/'s owner:
    under a directory that owner cannot search, the store leaves everything root's."""
    import tempfile

    with tempfile.TemporaryDirectory(dir="/tmp", prefix="gha-nsm-") as tmp:   # /tmp: searchable by all
        base = Path(tmp)
        top = base / "top"
        (top / "inner").mkdir(parents=True)
        os.chmod(base, 0o755)
        os.chmod(top, 0o700)
        other = os.getuid() + 4242
        assert not traversable(top / "inner" / "nsm", other, other)
        assert traversable(top / "inner" / "nsm", os.getuid(), os.getgid())
        os.chmod(top, 0o711)
        assert traversable(top / "inner" / "not-yet" / "nsm", other, other), "missing parts are made 0755"
