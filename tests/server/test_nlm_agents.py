"""The NSM records through both agents as Pacemaker runs them (ra/exports, ra/notify), on a
real ganesha.nfsd with NLM, rpcbind and rpc.statd in a node namespace (nlm_server.py), the
volume a tmpfs mounted in that node: the store is saved by the exports monitor and stop,
restored by the next start before anything saves over it, and notified by the notify
agent from the floating IP; the client reclaims its lock in the take-over grace.

The move is a stop and a start on the same node (what a planned move does on each side):
the stop's RemoveExport makes Ganesha SM_UNMON the client, so statd forgets it and only
the volume's copy still knows it; a save before the restore would lose it.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from nlm_server import NlmServer, skip_reason

from ganesha_ha.lab.nfs.nlm4 import NLM4_DENIED_GRACE_PERIOD, NLM4_GRANTED
from ganesha_ha.lab.nfs.nsm import NsmListener, servers_of
from ganesha_ha.lab.nfs.v3client import Nfs3Client, NlmClient

pytestmark = [pytest.mark.root, pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = NlmServer(tmp_path_factory.mktemp("agents"), grace_period=15).start()
    try:
        srv.wait_out_of_grace()
        yield srv
    finally:
        srv.stop()


def in_node(server: NlmServer, argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*server.nsenter(), *argv], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **(env or {})})


def test_records_saved_by_monitor_and_stop_restored_then_notified(server: NlmServer, tmp_path: Path) -> None:
    assert server.ganesha is not None and server.bus is not None
    vol = tmp_path / "vol"
    vol.mkdir()
    assert in_node(server, ["mount", "-t", "tmpfs", "-o", "size=8m,mode=0755", "gha-nsm-vol", str(vol)]).returncode == 0
    config = tmp_path / "gha.conf"
    config.write_text(f"[ganesha]\nbus_address = {server.bus.address}\nprotocols = \"3, 4\"\n"
                      f"recovery_root = {server.root / 's' / 'recovery'}\n"
                      f"ganesha_config = {server.ganesha.config_path}\n"
                      f"[nsm]\nstatd_dir = /var/lib/nfs\n[node]\nruntime_dir = {tmp_path / 'run'}\n")
    cli = [sys.executable, "-m", "ganesha_ha.cli", "--config", str(config)]
    ocf = {"OCF_ROOT": "/usr/lib/ocf", "OCF_RESKEY_server": "ganesha", "OCF_RESKEY_volume": str(vol),
           "OCF_RESKEY_ip": server.fip, "OCF_RESKEY_config": str(config), "OCF_RESKEY_CRM_meta_timeout": "60000"}

    def agent(name: str, action: str, interval: str = "0") -> subprocess.CompletedProcess:
        return in_node(server, [str(ROOT / "ra" / name), action],
                       {**ocf, "OCF_RESOURCE_INSTANCE": f"vol-{name}", "OCF_RESKEY_CRM_meta_interval": interval})

    def saved_records() -> list[str]:
        cp = in_node(server, ["cat", str(vol / ".ganesha-ha" / "nsm.json")])
        assert cp.returncode == 0, cp.stderr
        return list(json.loads(cp.stdout)["records"])

    a, b = server.client_addrs
    one, two = NlmClient(source_addr=a), NlmClient(source_addr=b)
    listener = server.client(lambda: NsmListener(a, on_notify=lambda n: one.reclaim_all(servers_of(n))).start())
    try:
        assert in_node(server, ["mkdir", str(vol / "data")]).returncode == 0   # the tmpfs is the node's
        for args in (["volume", "init", str(vol), "--server", "ganesha", "--id-range", "800-899"],
                     ["export", "add", str(vol), "data", "--client", f"{server.net.subnet}.0/24(rw)",
                      "--squash", "no_root_squash"]):
            cp = in_node(server, [*cli, *args])
            assert cp.returncode == 0, cp.stderr
        for name in ("exports", "notify"):
            cp = agent(name, "start")
            assert cp.returncode == 0, (name, cp.stderr)
        assert "no NLM client of" in cp.stderr and agent("notify", "monitor", "10000").returncode == 0

        mnt = Nfs3Client(server.fip, source_addr=a)
        fh = server.client(lambda: mnt.create(mnt.mount(str(vol / "data")), "locked"))
        lock1, lock2 = one.make_lock(fh, svid=5), two.make_lock(fh, svid=6)
        assert server.client(lambda: one.lock(server.fip, lock1)) == NLM4_GRANTED
        mon = agent("exports", "monitor", "10000")
        assert mon.returncode == 0, mon.stderr
        assert saved_records() == [a], "the monitor saved the client's record"

        # the move's stop side: notify, (the IP), exports
        for name in ("notify", "exports"):
            cp = agent(name, "stop")
            assert cp.returncode == 0, (name, cp.stderr)
        server.client(mnt.close)
        assert not (server.var_lib_nfs / "sm" / a).exists(), "RemoveExport: Ganesha SM_UNMON'd the client"
        assert saved_records() == [a], "the stop kept it on the volume"

        # the start side: exports (restore, then grace), the IP is up, notify
        start = agent("exports", "start")
        assert start.returncode == 0, start.stderr
        assert "1 client records restored, grace started" in start.stderr
        assert server.in_grace()
        assert saved_records() == [a], "nothing saved over it before the restore"
        note = agent("notify", "start")
        assert note.returncode == 0, note.stderr
        assert listener.wait(1, timeout=10), note.stderr
        assert f"SM_NOTIFY sent from {server.fip}" in note.stderr and "1 answered" in note.stderr
    finally:
        server.client(listener.stop)
        agent("notify", "stop")
    assert {n.source for n in listener.notifications} == {server.fip}
    assert [(r.held.lock, r.stat) for r in one.reclaims] == [(lock1, NLM4_GRANTED)]
    assert server.client(lambda: two.lock(server.fip, lock2)) == NLM4_DENIED_GRACE_PERIOD
    mon = agent("exports", "monitor", "10000")
    assert mon.returncode == 0, mon.stderr
    assert saved_records() == [a], "the client is statd's again, and the volume's"
    assert server.client(lambda: one.unlock(server.fip, lock1)) == NLM4_GRANTED
    assert agent("exports", "stop").returncode == 0
    assert in_node(server, ["umount", str(vol)]).returncode == 0
