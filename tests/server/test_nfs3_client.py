"""The lab's NFSv3 + NLM + NSM clients against a real ganesha.nfsd 4.3 with NLM on, in a
private network namespace with its own rpcbind and rpc.statd (nlm_server.py).

What these tests pin down, measured here:

* MOUNT3 MNT through rpcbind's GETPORT returns a root handle that NFSv3 LOOKUP, CREATE,
  WRITE (FILE_SYNC), READ and GETATTR work through; the bytes are on the export.
* NLM4 LOCK from one host is GRANTED, and an exclusive LOCK of another host on the same
  range NLM4_DENIED (TEST names the holder) until the first UNLOCKs. Ganesha SM_MONs the
  locking host with statd under its **address**: the record is sm/<client ip>, whatever
  caller_name the client gave.
* Reclaim after a crash: the statd record saved before the restart (Ganesha's start sends
  SM_UNMON_ALL, which deletes it), `sm-notify -d -v <floating ip> -P <saved dir>` reaches
  the client's NsmListener from the floating IP, naming the server by its name; the client
  reclaims with reclaim=true while Ganesha is in grace and gets it (a new lock in grace:
  NLM4_DENIED_GRACE_PERIOD); after grace the other host is still refused. sm-notify deletes
  the saved record once the client answered.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest
from nlm_server import FIP_NAME, NlmServer, skip_reason

from ganesha_ha.lab.nfs.nlm4 import (NLM4_DENIED, NLM4_DENIED_GRACE_PERIOD, NLM4_GRANTED,
                                     stat_name)
from ganesha_ha.lab.nfs.nsm import NsmListener, servers_of
from ganesha_ha.lab.nfs.v3client import Nfs3Client, Nfs3Error, NlmClient
from ganesha_ha.lab.procs import wait_until

pytestmark = [pytest.mark.root, pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")]

DATA = b"an NFSv3 client's bytes\n" * 40


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = NlmServer(tmp_path_factory.mktemp("nlm")).start()
    try:
        srv.wait_out_of_grace()   # NLM on: the start's grace always runs its full length
        yield srv
    finally:
        srv.stop()


def mounted(server: NlmServer, name: str, content: bytes = b"") -> tuple[Nfs3Client, bytes]:
    """A client from the first client address and the handle of a new file `name`."""
    (server.export_dir / name).write_bytes(content)
    c = Nfs3Client(server.fip, source_addr=server.client_addrs[0])
    fh = server.client(lambda: c.lookup(c.mount(str(server.export_dir)), name))
    return c, fh


def test_mount_create_write_read_through_handles(server: NlmServer) -> None:
    c = Nfs3Client(server.fip, source_addr=server.client_addrs[0])

    def work():
        root = c.mount(str(server.export_dir))
        fh = c.create(root, "v3-file")
        assert c.write(fh, 0, DATA) == len(DATA)
        assert c.write(fh, len(DATA), b"tail", stable=False) == 4
        attrs = c.getattr(fh)
        back = c.read(fh, 0, len(DATA) + 100)
        again = c.read(c.lookup(root, "v3-file"), 3, 5)   # a fresh lookup: the same file
        with pytest.raises(Nfs3Error) as ei:
            c.lookup(root, "missing")
        c.close()
        return root, fh, attrs, back, again, ei.value

    root, fh, attrs, back, again, err = server.client(work)
    assert back == DATA + b"tail" and again == DATA[3:8]
    assert (attrs.size, attrs.mode & 0o777) == (len(DATA) + 4, 0o644)
    assert (server.export_dir / "v3-file").read_bytes() == DATA + b"tail"
    assert (err.name, err.proc) == ("NFS3ERR_NOENT", "LOOKUP")
    assert 0 < len(root) <= 64 and fh != root
    # The saved handle works on a new connection (what a client replays after a move).
    c2 = Nfs3Client(server.fip, source_addr=server.client_addrs[1])
    assert server.client(lambda: c2.read(fh, 0, 10)) == DATA[:10]
    with pytest.raises(Nfs3Error) as ei:
        server.client(lambda: c2.mount("/no/such/export"))
    assert ei.value.name.startswith("MNT3ERR_")


def test_nlm_lock_conflict_and_unlock_between_two_hosts(server: NlmServer) -> None:
    _, fh = mounted(server, "locked", DATA)
    a, b = server.client_addrs
    one = NlmClient(source_addr=a)
    two = NlmClient(source_addr=b)
    lock1 = one.make_lock(fh, svid=101, offset=0, length=100)
    lock2 = two.make_lock(fh, svid=202, offset=50, length=10)
    assert one.caller_name == a

    assert stat_name(server.client(lambda: one.lock(server.fip, lock1))) == "NLM4_GRANTED"
    assert (server.var_lib_nfs / "sm" / a).exists()       # statd monitors the client by address
    assert server.client(lambda: two.lock(server.fip, lock2)) == NLM4_DENIED
    stat, holder = server.client(lambda: two.test(server.fip, lock2))
    assert stat == NLM4_DENIED and (holder.svid, holder.oh, holder.exclusive) == (101, lock1.oh, True)
    # A range that does not overlap is free; a shared lock conflicts with the exclusive one.
    free = two.make_lock(fh, svid=202, offset=100, length=10)
    assert server.client(lambda: two.lock(server.fip, free)) == NLM4_GRANTED
    assert server.client(lambda: two.lock(server.fip, lock2, exclusive=False)) == NLM4_DENIED
    assert len(one.held) == 1 and len(two.held) == 1

    assert server.client(lambda: one.unlock(server.fip, lock1)) == NLM4_GRANTED
    assert not one.held
    assert server.client(lambda: two.lock(server.fip, lock2)) == NLM4_GRANTED
    assert server.client(lambda: two.unlock(server.fip, lock2)) == NLM4_GRANTED
    assert server.client(lambda: two.unlock(server.fip, free)) == NLM4_GRANTED
    assert server.client(lambda: one.test(server.fip, lock1)) == (NLM4_GRANTED, None)


def test_sm_notify_from_the_floating_ip_makes_the_client_reclaim_in_grace(server: NlmServer) -> None:
    _, fh = mounted(server, "reclaimed", DATA)
    a, b = server.client_addrs
    one = NlmClient(source_addr=a)
    two = NlmClient(source_addr=b)
    lock1 = one.make_lock(fh, svid=301)
    lock2 = two.make_lock(fh, svid=302)
    assert server.client(lambda: one.lock(server.fip, lock1)) == NLM4_GRANTED

    listener = server.client(lambda: NsmListener(
        a, on_notify=lambda note: one.reclaim_all(servers_of(note))).start())
    try:
        # What the NSM store will do: keep statd's records of the volume's clients before
        # the restart (Ganesha's start has statd delete them), with the state number.
        saved = server.root / "nsm-saved"
        (saved / "sm").mkdir(parents=True)
        (saved / "sm.bak").mkdir()
        shutil.copy2(server.var_lib_nfs / "sm" / a, saved / "sm" / a)
        shutil.copy2(server.var_lib_nfs / "state", saved / "state")

        server.kill_ganesha()
        server.start_ganesha()
        t0 = time.monotonic()
        assert server.in_grace()
        # The new instance's SM_UNMON_ALL reaches statd after it listens (nfs_init.c
        # nfs_start): wait for statd to act on it, then the record must be gone.
        record = server.var_lib_nfs / "sm" / a
        assert wait_until(lambda: not record.exists(), 10), "statd kept the record after the restart"
        assert server.client(lambda: two.lock(server.fip, lock2)) == NLM4_DENIED_GRACE_PERIOD

        cp = subprocess.run([*server.nsenter(), "sm-notify", "-d", "-v", server.fip, "-P", str(saved)],
                            capture_output=True, text=True, timeout=60)
        assert cp.returncode == 0, cp.stderr
        assert listener.wait(1, timeout=10), f"no SM_NOTIFY reached the client: {cp.stderr[-800:]}"
        took = time.monotonic() - t0
    finally:
        server.client(listener.stop)
    notes = listener.notifications
    assert {n.source for n in notes} == {server.fip}
    assert {n.mon_name for n in notes} <= {FIP_NAME, FIP_NAME.split(".")[0]} and notes[0].mon_name == FIP_NAME
    assert notes[0].state % 2 == 1 and not listener.errors
    # GRANTED is the proof the reclaim came in grace: Ganesha grants reclaim=true only then
    # (nlm4_Lock: nfs_get_grace_status(reclaim)); out of it, NLM4_DENIED_GRACE_PERIOD
    assert [(r.held.lock, r.stat) for r in one.reclaims] == [(lock1, NLM4_GRANTED)], \
        f"reclaim {took:.1f} s after the restart (grace {server.grace_period} s)"
    assert os.listdir(saved / "sm") == [] and os.listdir(saved / "sm.bak") == []
    assert (server.var_lib_nfs / "sm" / a).exists()       # the new instance monitors it again

    server.wait_out_of_grace()
    assert server.client(lambda: two.lock(server.fip, lock2)) == NLM4_DENIED   # the reclaim holds
    assert server.client(lambda: one.unlock(server.fip, lock1)) == NLM4_GRANTED
    assert server.client(lambda: two.lock(server.fip, lock2)) == NLM4_GRANTED
    assert server.client(lambda: two.unlock(server.fip, lock2)) == NLM4_GRANTED
