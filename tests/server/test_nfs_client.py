"""The lab's NFSv4.0 client against a real private ganesha.nfsd (nfs-ganesha 4.3, VFS FSAL).

What these tests pin down about Ganesha, measured here:

* After SIGKILL and a restart with the same Export_Id, path and RecoveryRoot, the old file
  handle still reads at once with the anonymous stateid, even inside the grace period.
* The old client id then fails with NFS4ERR_STALE_CLIENTID, or NFS4ERR_EXPIRED when both
  instances started in the same second (Ganesha's server epoch is `time()` in seconds and is
  part of the client id); `grace_aware` re-establishes on either.
* CLAIM_PREVIOUS reclaim succeeds in grace when the client was in the recovery records
  (`v4recov/node0/::ffff:127.0.0.1-(14:gha-lab-client)`: keyed on client IP *and* name);
  CLAIM_NULL OPEN gets NFS4ERR_GRACE until grace ends (~Grace_Period + 1 s for NFSv4.0,
  which has no RECLAIM_COMPLETE to end it early). With no client in the records, a fresh
  Ganesha has no grace at all.
* A handle minted under Export_Id 7, replayed at a server that serves the same directory as
  Export_Id 8, fails at PUTFH with NFS4ERR_STALE (70), not NFS4ERR_BADHANDLE: Ganesha's
  handle carries the export id (bytes 2-3), so the lab's "same handle still works" check can
  really fail. Bytes that do not parse as a Ganesha handle get NFS4ERR_BADHANDLE instead.
* An open stateid from before the restart gets NFS4ERR_STALE_STATEID; in the same second
  NFS4ERR_EXPIRED, and after a new SETCLIENTID (which then hands out the very same client id
  number, epoch<<32|1) NFS4ERR_BAD_STATEID. Only a reclaim brings the open back.
"""
from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from ganesha_servers import NEEDS_GANESHA, PSEUDO, V4Lab as Lab, grace_held, v4lab

from ganesha_ha.lab.nfs.nfs4 import NFS4ERR_NAMES, NfsError

pytestmark = NEEDS_GANESHA

CONTENT = b"hello from ganesha-ha\n" * 3
RESTART_GRACE = 20   # s: the restarted instance's Grace_Period (and Lease_Lifetime) in the reclaim test


@pytest.fixture
def lab(tmp_path: Path):
    yield from v4lab(tmp_path, CONTENT)


def test_lookup_read_matches_libnfs(lab: Lab) -> None:
    lab.start()
    c = lab.client()
    fh = c.lookup(f"{PSEUDO}/file")
    assert 0 < len(fh) <= 128
    assert c.read(fh, 0, 4096) == CONTENT
    assert c.read(fh, 5, 4) == CONTENT[5:9]
    assert c.getattr_size(fh) == len(CONTENT)
    if shutil.which("nfs-cat") is None:
        pytest.skip("libnfs-utils (nfs-cat) is not installed")
    url = f"nfs://127.0.0.1{PSEUDO}/file?version=4&nfsport={lab.port}"
    out = subprocess.run(["nfs-cat", url], capture_output=True, timeout=20, check=True).stdout
    assert out == CONTENT == c.read(fh, 0, len(CONTENT) + 10)


def test_nfs_error_names_the_status(lab: Lab) -> None:
    lab.start()
    c = lab.client()
    with pytest.raises(NfsError) as ei:
        c.lookup(f"{PSEUDO}/missing")
    assert (ei.value.status, ei.value.name, ei.value.op) == (2, "NFS4ERR_NOENT", "LOOKUP")
    assert "NFS4ERR_NOENT" in str(ei.value)
    assert NfsError(70).name == "NFS4ERR_STALE" and NfsError(10013).name == "NFS4ERR_GRACE"
    assert NFS4ERR_NAMES[10001] == "NFS4ERR_BADHANDLE"
    # A garbage handle is refused, and grace_aware does not wait it out.
    with pytest.raises(NfsError) as ei:
        c.grace_aware(lambda: c.read(b"\x43\x00" + b"\xff" * 20, 0, 10),
                      deadline=time.monotonic() + 10)
    # Ganesha 4.3 says BADHANDLE for bytes it cannot parse (STALE is for a well-formed
    # handle of an export or object it does not have: see the last test).
    assert (ei.value.op, ei.value.name) == ("PUTFH", "NFS4ERR_BADHANDLE")


def test_open_create_write_read_round_trip(lab: Lab) -> None:
    lab.start()
    c = lab.client()
    c.establish()
    f = c.open(f"{PSEUDO}/new", create=True, write=True)
    assert len(f.stateid) == 16 and f.confirmed
    data = bytes(range(256)) * 300  # 76800 bytes: more than one READ on small rsize too
    assert c.write(f, 0, data) == len(data)
    assert c.write(f, len(data), b"tail", stable=False) == 4
    assert c.read(f, 0, len(data) + 100) == data + b"tail"
    assert c.read(f.fh, 0, 10) == data[:10]  # the bare handle reads too
    assert c.getattr_size(f.fh) == len(data) + 4
    c.close_file(f)
    c.renew()
    assert (lab.export_dir / "new").read_bytes() == data + b"tail"


def test_saved_handle_reads_after_sigkill_and_restart_then_reclaim(lab: Lab) -> None:
    g1 = lab.start(export_id=7)
    c = lab.client()
    c.establish()
    fh = c.lookup(f"{PSEUDO}/file")
    f = c.open(f"{PSEUDO}/file", write=True)  # puts this client in the recovery records
    assert c.write(f, 0, b"HELLO") == 5
    expected = b"HELLO" + CONTENT[5:]

    g1.kill()  # crash: no clean shutdown, the new instance must enter grace
    # Grace_Period RESTART_GRACE, Lease_Lifetime the same (the client stays idle in it): the
    # reaper every 10 s (nfs_reaper_thread.c reaper_init), a tick after the reclaim well before
    # the grace's end however slow the machine
    g2 = lab.start(export_id=7, grace_period=RESTART_GRACE)
    t0 = time.monotonic()

    # The saved handle works on the new server (anonymous stateid: no open state needed).
    assert c.grace_aware(lambda: c.read(fh, 0, 4096), deadline=t0 + 15) == expected
    # The old open stateid is gone with the old instance, and retrying cannot bring it back.
    with pytest.raises(NfsError) as ei:
        c.grace_aware(lambda: c.read(f, 0, 5), deadline=t0 + 10)
    # STALE_STATEID when the instances' epochs differ; in the same second EXPIRED, and after
    # grace_aware's re-establish (which gets the very same client id number) BAD_STATEID.
    assert ei.value.name in ("NFS4ERR_STALE_STATEID", "NFS4ERR_EXPIRED", "NFS4ERR_BAD_STATEID")
    # We are in grace: a new OPEN is refused with NFS4ERR_GRACE...
    c.grace_aware(c.establish, deadline=t0 + 10)
    with pytest.raises(NfsError) as ei:
        c.open(f"{PSEUDO}/file")
    assert ei.value.name == "NFS4ERR_GRACE"
    # ...but the old open state is reclaimed with CLAIM_PREVIOUS on the saved handle.
    f2 = c.grace_aware(lambda: c.reclaim(f), deadline=t0 + 10)
    reclaimed = time.monotonic()
    assert f2.fh == fh and f2.stateid != f.stateid
    assert reclaimed - t0 < g2.grace_period
    assert c.write(f2, 0, b"again") == 5
    assert c.read(f2, 0, 5) == b"again"
    c.close_file(f2)
    # An NFSv4.0 client cannot send RECLAIM_COMPLETE, so its record pins the grace: it holds
    # past the reaper's first tick after the reclaim, which would have lifted it had the
    # client been a 4.1 one (nfs4_recovery.c nfs_try_lift_grace). Both times are taken where
    # they happen (the reclaim's answer, the last get_grace that found grace on), so a slow
    # start of the daemon does not shorten what is measured.
    tick = 10   # REAPER_DELAY: Lease_Lifetime is 20 s or more
    held, lifted = grace_held(lab.bus.address, 3 * g2.grace_period)
    assert lifted < float("inf"), "grace never ends"
    assert held - reclaimed > tick + 0.5, f"grace lifted {held - reclaimed:.1f} s after a 4.0 client's reclaim"
    # A new OPEN goes through once grace ends, by retrying NFS4ERR_GRACE.
    f3 = c.grace_aware(lambda: c.open(f"{PSEUDO}/file"), deadline=time.monotonic() + 10)
    assert c.read(f3, 0, 5) == b"again"
    c.close_file(f3)


def test_handle_from_another_export_id_is_stale(lab: Lab) -> None:
    """Same directory, new Export_Id: the old handle gets NFS4ERR_STALE at PUTFH, at once."""
    g1 = lab.start(export_id=7)
    c = lab.client()
    fh = c.lookup(f"{PSEUDO}/file")
    g1.kill()

    # While nothing listens, grace_aware gives up at the deadline with an OSError: an
    # outage, which the lab must not confuse with a stale handle.
    with pytest.raises(OSError):
        c.grace_aware(lambda: c.read(fh, 0, 10), deadline=time.monotonic() + 0.5)

    lab.start(export_id=8)
    t0 = time.monotonic()
    with pytest.raises(NfsError) as ei:
        c.grace_aware(lambda: c.read(fh, 0, 10), deadline=t0 + 15)
    assert time.monotonic() - t0 < 3, "NFS4ERR_STALE must not be retried"
    assert (ei.value.status, ei.value.name, ei.value.op) == (70, "NFS4ERR_STALE", "PUTFH")
    # The path itself is fine: a fresh lookup gives a different, working handle.
    fh8 = c.lookup(f"{PSEUDO}/file")
    assert fh8 != fh
    assert c.read(fh8, 0, 4096) == CONTENT
