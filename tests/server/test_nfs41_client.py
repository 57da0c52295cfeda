"""The lab's NFSv4.1 client (minor version 1) against a real private ganesha.nfsd (4.3, VFS).

What these tests pin down about Ganesha 4.3, measured here:

* EXCHANGE_ID presents server owner = the host name (minor id 0) and server scope = owner +
  "_NFS-Ganesha" **with a trailing NUL** unless NFSV4 { Server_Scope } is set; a set scope
  comes with the trailing NUL too (src/Protocols/NFS/nfs4_op_exchange_id.c).
* CREATE_SESSION writes the client's recovery record (`::ffff:127.0.0.1-(<len>:<owner>)`);
  DESTROY_SESSION + DESTROY_CLIENTID remove it.
* A CLAIM_NULL OPEN needs RECLAIM_COMPLETE first (the client sends it); a second one gets
  NFS4ERR_COMPLETE_ALREADY, a CLAIM_PREVIOUS after it NFS4ERR_NO_GRACE.
* After SIGKILL and a restart on the same recovery root, the old session gets
  NFS4ERR_BADSESSION; with a new session the saved handle reads at once, the open comes
  back with CLAIM_PREVIOUS, RECLAIM_COMPLETE is accepted and, the client being the only one
  with a record, grace ends early (at the reaper's next tick, Lease_Lifetime/2 here).
* Ganesha does not itself refuse a reclaim from a client whose state another scope granted:
  the scope check is the client's (RFC 8881 2.10.4), and this client makes it.
"""
from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from ganesha_servers import NEEDS_GANESHA, PSEUDO, V4Lab, v4lab

from ganesha_ha.lab.ganesha_daemon import in_grace
from ganesha_ha.lab.nfs import nfs41
from ganesha_ha.lab.nfs.client import ScopeMismatch
from ganesha_ha.lab.nfs.nfs4 import NfsError
from ganesha_ha.lab.nfs.nfs41 import SEQ4_STATUS_CB_PATH_DOWN, ServerOwner

pytestmark = NEEDS_GANESHA

CONTENT = b"hello from an NFSv4.1 session\n" * 3
GRACE = 30   # s: the restarted instance's Grace_Period in the reclaim test


@pytest.fixture
def lab(tmp_path: Path):
    yield from v4lab(tmp_path, CONTENT)


def wait_out_of_grace(lab: V4Lab, limit: float) -> None:
    """Until the running Ganesha says it is out of grace (fails after `limit` seconds)."""
    t0 = time.monotonic()
    while in_grace(lab.bus.address):
        assert time.monotonic() - t0 < limit, "still in grace"
        time.sleep(0.1)


def test_session_open_write_read_close_and_goodbye(lab: V4Lab) -> None:
    lab.start()
    c = lab.client(minorversion=1, client_name="gha-v41")
    c.establish()
    host = socket.gethostname().encode()
    assert c.server.server_owner == ServerOwner(0, host)
    assert c.server.server_scope == host + b"_NFS-Ganesha\x00"
    assert not c.server.confirmed and c.session.fore.maxrequests == 1
    assert lab.records() == ["::ffff:127.0.0.1-(7:gha-v41)"]

    f = c.open(f"{PSEUDO}/new", create=True, write=True)   # RECLAIM_COMPLETE goes first
    assert c.reclaim_completed and f.server_scope == c.server.server_scope
    data = bytes(range(256)) * 300
    assert c.write(f, 0, data) == len(data)
    assert c.read(f, 0, len(data) + 10) == data
    assert c.read(f.fh, 0, 4) == data[:4]                   # the bare handle, anonymous stateid
    assert c.getattr_size(f.fh) == len(data)
    assert c.read(c.lookup(f"{PSEUDO}/file"), 0, 4096) == CONTENT
    c.renew()
    assert c.session.last.status_flags & SEQ4_STATUS_CB_PATH_DOWN  # we run no back channel
    c.close_file(f)
    with pytest.raises(NfsError) as ei:
        c.reclaim_complete()
    assert (ei.value.name, ei.value.op) == ("NFS4ERR_COMPLETE_ALREADY", "RECLAIM_COMPLETE")
    assert not c.recoveries
    c.destroy_session()
    c.destroy_clientid()
    assert lab.records() == []
    assert (lab.export_dir / "new").read_bytes() == data


def test_slot_sequence_survives_a_lost_reply_either_way(lab: V4Lab) -> None:
    """A request whose reply never came: whether or not the server processed it, the next
    request goes through on the first or second try, and the slot is in step after."""
    lab.start()
    c = lab.client(minorversion=1)
    c.establish()
    slot = c.session.slot
    # The server never saw it: the client moved on, the server answers SEQ_MISORDERED, the
    # client steps back once and resends.
    before = slot.seqid
    slot.lost()
    c.renew()
    assert (slot.seqid, slot.uncertain) == (before + 1, False)
    # The server processed it but the reply was lost.
    c._send([nfs41.sequence(c.session.sessionid, slot.seqid)])
    slot.lost()
    c.renew()
    assert (slot.seqid, slot.uncertain) == (before + 3, False)
    assert c.read(c.lookup(f"{PSEUDO}/file"), 0, 5) == CONTENT[:5]


def test_reclaim_after_sigkill_and_restart_then_reclaim_complete(lab: V4Lab) -> None:
    lab.start(grace_period=10, server_scope="gha-cluster", server_owner="gha-node-a")
    c = lab.client(minorversion=1, client_name="gha-v41-r")
    c.establish()
    assert c.server.server_scope == b"gha-cluster\x00"
    assert c.server.server_owner.major_id == b"gha-node-a"
    fh = c.lookup(f"{PSEUDO}/file")
    f = c.open(f"{PSEUDO}/file", write=True)
    assert c.write(f, 0, b"HELLO") == 5
    expected = b"HELLO" + CONTENT[5:]

    lab.daemons[-1].kill()
    # Another owner, the same scope: what a cluster of Ganeshas should present. A grace of
    # GRACE s, its reaper every 5 s (Lease_Lifetime 10 < 20: nfs_reaper_thread.c reaper_init):
    # the reclaim below has four ticks before the lift could no longer be told from the
    # grace's end, however slow the machine. t0 before the start: the grace begins after it.
    t0 = time.monotonic()
    lab.start(grace_period=GRACE, lease_lifetime=10, server_scope="gha-cluster", server_owner="gha-node-b")
    assert in_grace(lab.bus.address)
    # The saved handle reads on the new instance: the client re-made its session itself.
    assert c.grace_aware(lambda: c.read(fh, 0, 4096), deadline=t0 + GRACE) == expected
    assert c.recoveries == ["NFS4ERR_BADSESSION at SEQUENCE: new client id and session"]
    assert c.server.server_owner.major_id == b"gha-node-b" and not c.reclaim_completed
    with pytest.raises(NfsError) as ei:
        c.read(f, 0, 5)                     # the old open state died with the old instance
    assert ei.value.name in ("NFS4ERR_STALE_STATEID", "NFS4ERR_BAD_STATEID", "NFS4ERR_EXPIRED")

    f2 = c.grace_aware(lambda: c.reclaim(f), deadline=t0 + GRACE)   # CLAIM_PREVIOUS
    assert f2.fh == fh
    c.reclaim_complete()
    assert c.reclaim_completed
    with pytest.raises(NfsError) as ei:
        c.reclaim(f)
    assert ei.value.name == "NFS4ERR_NO_GRACE"
    assert c.write(f2, 0, b"again") == 5 and c.read(f2, 0, 5) == b"again"
    # Every client with a record said RECLAIM_COMPLETE: grace ends before its GRACE s (at
    # the reaper's next tick), counted from before the start, so a full grace cannot pass.
    reclaimed = time.monotonic() - t0
    wait_out_of_grace(lab, GRACE + 15)
    lifted = time.monotonic() - t0
    assert lifted < GRACE, f"grace lifted {lifted:.1f} s after the restart began (reclaimed at {reclaimed:.1f} s)"
    f3 = c.open(f"{PSEUDO}/after", create=True, write=True)
    c.close_file(f3)
    c.close_file(f2)


def test_a_new_server_scope_makes_the_client_refuse_to_reclaim(lab: V4Lab) -> None:
    lab.start(server_scope="gha-scope-a")
    c = lab.client(minorversion=1)
    f = c.open(f"{PSEUDO}/file", write=True)
    lab.daemons[-1].kill()
    lab.start(server_scope="gha-scope-b")
    # Straight to the reclaim: the client finds the session gone, re-makes it with the new
    # server and only then compares the scopes (before anything is sent to reclaim).
    with pytest.raises(ScopeMismatch) as ei:
        c.grace_aware(lambda: c.reclaim(f), deadline=time.monotonic() + 10)
    assert c.recoveries and c.server.server_scope == b"gha-scope-b\x00"
    assert (ei.value.granted_by, ei.value.now) == (b"gha-scope-a\x00", b"gha-scope-b\x00")
    # Ganesha itself would have granted it: the check is the client's to make.
    c.check_scope = False
    assert c.reclaim(f).fh == f.fh
