"""The NSM store (recovery/nsm.py) and the notify agent (ocf:ganesha-ha:notify, ra/notify)
against real programs: ganesha.nfsd 4.3 with NLM, rpcbind and rpc.statd in a node namespace
of their own (nlm_server.py), Debian's sm-notify, and the lab's NFSv3 + NLM client with its
NSM listener in the client namespace.

The take-over is played on one node: the statd record of a client holding a lock is saved to
the "volume" by the store (as the exports agent's monitor does), Ganesha is killed and
started again (its start has statd delete every record: SM_UNMON_ALL), the store restores the
volume's records into the volume's notify directory, the take-over grace is asked for over
D-Bus (what the exports agent's start does), and then the notify agent runs in the node as
Pacemaker would run it.

What is proven:
- the record statd wrote is the one saved, and a save after Ganesha's restart keeps it;
- the notify agent's start with the floating IP *not* on the node fails and sends nothing
  (the listener hears nothing and the records stay to be sent);
- with the IP up, the SM_NOTIFY comes from the floating IP, naming it, with an odd state
  number that is saved on the volume; the client reclaims its lock during grace and gets it;
  the notify directory is empty afterwards; a second notification uses a higher number;
- monitor / stop / monitor answer 0 / 0 / 7.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from nlm_server import FIP_NAME, NlmServer, skip_reason

from ganesha_ha.context import VolumeContext
from ganesha_ha.lab.ganesha_daemon import _ganesha_call
from ganesha_ha.lab.nfs.nlm4 import NLM4_DENIED, NLM4_DENIED_GRACE_PERIOD, NLM4_GRANTED
from ganesha_ha.lab.nfs.nsm import NsmListener, servers_of
from ganesha_ha.lab.nfs.v3client import Nfs3Client, NlmClient
from ganesha_ha.recovery import peers
from ganesha_ha.recovery.nsm import MONITOR_DIR, NOTIFY_DIR, NsmStore, read_record_dir

pytestmark = [pytest.mark.root, pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")]

ROOT = Path(__file__).resolve().parents[2]
RA = ROOT / "ra" / "notify"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = NlmServer(tmp_path_factory.mktemp("nsm"), grace_period=12).start()
    try:
        srv.wait_out_of_grace()
        yield srv
    finally:
        srv.stop()


def agent(server: NlmServer, action: str, config: Path, volume: Path, interval: str = "0"):
    """ra/notify as Pacemaker runs it, inside the server node (its /etc/hosts names the IP)."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "OCF_ROOT": "/usr/lib/ocf", "OCF_RESOURCE_INSTANCE": "vol-notify",
           "OCF_RESKEY_ip": server.fip, "OCF_RESKEY_volume": str(volume), "OCF_RESKEY_config": str(config),
           "OCF_RESKEY_CRM_meta_interval": interval, "OCF_RESKEY_CRM_meta_timeout": "30000"}
    return subprocess.run([*server.nsenter(), str(RA), action], env=env, capture_output=True, text=True,
                          timeout=60)


def grace(server: NlmServer, event: str) -> None:
    """The admin D-Bus grace event, as the exports agent's start sends `5:<ip>`."""
    assert server.bus is not None
    reply = _ganesha_call(server.bus.address, "/org/ganesha/nfsd/admin", "org.ganesha.nfsd.admin", "grace", event)
    assert bool(reply[0]), reply


def test_records_travel_and_the_notification_leaves_from_the_ip_only_once_it_is_up(server: NlmServer,
                                                                                   tmp_path: Path) -> None:
    a, b = server.client_addrs
    volume = tmp_path / "vol"
    (volume / ".ganesha-ha").mkdir(parents=True)
    runtime = tmp_path / "run-gha"
    config = tmp_path / "ganesha-ha.conf"
    config.write_text(f"[node]\nruntime_dir = {runtime}\n[nsm]\nstatd_dir = /var/lib/nfs\nnotify_wait = 5\n")
    assert server.node is not None and server.node.holder_pid is not None
    # the store as the exports agent in the node has it: statd's directory, the node's TCP table
    store = NsmStore(server.var_lib_nfs, runtime / "nsm", proc_net=f"/proc/{server.node.holder_pid}/net")
    ctx = VolumeContext(mountpoint=volume, state_dir=volume / ".ganesha-ha", volume_uuid="u", ip=server.fip)

    (server.export_dir / "nsm-file").write_bytes(b"x" * 100)
    mount = Nfs3Client(server.fip, source_addr=a)       # its connection ties client a to the IP
    fh = server.client(lambda: mount.lookup(mount.mount(str(server.export_dir)), "nsm-file"))
    one, two = NlmClient(source_addr=a), NlmClient(source_addr=b)
    lock1, lock2 = one.make_lock(fh, svid=11), two.make_lock(fh, svid=22)
    listener = server.client(lambda: NsmListener(a, on_notify=lambda n: one.reclaim_all(servers_of(n))).start())
    try:
        assert server.client(lambda: one.lock(server.fip, lock1)) == NLM4_GRANTED
        peers.forget()
        assert store.save(ctx)
        saved = json.loads((ctx.state_dir / "nsm.json").read_text())["records"]
        assert list(saved) == [a] and saved[a] == (server.var_lib_nfs / "sm" / a).read_text()
        assert agent(server, "monitor", config, volume).returncode == 7

        server.kill_ganesha()
        server.start_ganesha()
        t = time.monotonic()
        while (server.var_lib_nfs / "sm" / a).exists() and time.monotonic() - t < 10:
            time.sleep(0.1)
        assert not (server.var_lib_nfs / "sm" / a).exists(), "Ganesha's start had statd forget the client"
        peers.forget()
        store.save(ctx)
        assert list(json.loads((ctx.state_dir / "nsm.json").read_text())["records"]) == [a]
        # the NFSv3 handle taken from the old instance reads on the new one
        fresh = Nfs3Client(server.fip, source_addr=b)
        assert server.client(lambda: fresh.read(fh, 0, 10)) == b"x" * 10
        server.client(fresh.close)
        server.wait_out_of_grace()

        # the take-over: records restored; the IP is not up yet
        server.net.del_ip("s")
        assert store.restore(ctx) == 1
        early = agent(server, "start", config, volume)
        assert early.returncode == 6, early.stderr     # a group in the wrong order: wrong on every node
        assert f"the floating IP {server.fip} is not configured on this node" in early.stderr
        time.sleep(1.0)
        assert listener.notifications == [], "nothing may be sent before the IP is up"
        assert list(store.pending(ctx)) == [a]
        assert agent(server, "monitor", config, volume).returncode == 7

        # grace asked for (the exports agent's start, before the IP's), then the IP, then the
        # notification: the reclaim it brings must land inside the grace. The event comes only
        # now, so the grace covers the take-over's own steps, not the refused start above.
        t0 = time.monotonic()
        grace(server, f"5:{server.fip}")
        server.net.add_ip("s")
        res = agent(server, "start", config, volume)
        assert res.returncode == 0, res.stderr
        assert listener.wait(1, timeout=10)
        assert server.in_grace(), f"reclaimed {time.monotonic() - t0:.1f} s after the grace event: out of grace"
    finally:
        server.client(listener.stop)
    notes = listener.notifications
    assert {n.source for n in notes} == {server.fip}
    assert notes[0].mon_name == FIP_NAME and notes[0].state % 2 == 1
    assert int((ctx.state_dir / "nsm-state").read_text()) == notes[0].state
    assert [(r.held.lock, r.stat) for r in one.reclaims] == [(lock1, NLM4_GRANTED)]
    assert not listener.errors
    directory = store.notify_dir(ctx)
    assert directory is not None
    assert read_record_dir(directory / MONITOR_DIR) == {} and read_record_dir(directory / NOTIFY_DIR) == {}
    assert server.client(lambda: two.lock(server.fip, lock2)) == NLM4_DENIED_GRACE_PERIOD
    assert agent(server, "monitor", config, volume, interval="10000").returncode == 0
    assert agent(server, "stop", config, volume).returncode == 0
    assert agent(server, "monitor", config, volume).returncode == 7

    # the reclaimed lock holds after grace; the client is monitored again, and the next save
    # (the record is the node's again) keeps it for the next move
    server.wait_out_of_grace()
    assert server.client(lambda: two.lock(server.fip, lock2)) == NLM4_DENIED
    assert (server.var_lib_nfs / "sm" / a).exists()
    peers.forget()
    store.save(ctx)
    assert list(json.loads((ctx.state_dir / "nsm.json").read_text())["records"]) == [a]

    # a second take-over notifies with a higher state number (a client's statd ignores a repeat)
    first = notes[0].state
    listener2 = server.client(lambda: NsmListener(a).start())
    try:
        assert store.restore(ctx) == 1
        res = agent(server, "start", config, volume)
        assert res.returncode == 0, res.stderr
        assert listener2.wait(1, timeout=10)
    finally:
        server.client(listener2.stop)
    assert listener2.notifications[0].state > first and listener2.notifications[0].state % 2 == 1
    assert agent(server, "stop", config, volume).returncode == 0
    store.clear(ctx)
    assert not os.path.exists(runtime / "nsm" / server.fip)
    assert server.client(lambda: one.unlock(server.fip, lock1)) == NLM4_GRANTED
    server.client(mount.close)


def test_validate_all_needs_the_ips_name_and_sm_notify(server: NlmServer, tmp_path: Path) -> None:
    config = tmp_path / "ganesha-ha.conf"
    config.write_text(f"[node]\nruntime_dir = {tmp_path / 'run'}\n")
    ok = agent(server, "validate-all", config, tmp_path)
    assert ok.returncode == 0, ok.stderr
    config.write_text(f"[node]\nruntime_dir = {tmp_path / 'run'}\n[nsm]\nsm_notify = /nonexistent/sm-notify\n")
    missing = agent(server, "validate-all", config, tmp_path)
    assert missing.returncode == 5 and "ocf-exit-reason:/nonexistent/sm-notify is missing" in missing.stderr
    # outside the node there is no name for the lab's floating IP: refused with the fix named
    env = {"PATH": "/usr/sbin:/usr/bin", "OCF_RESKEY_ip": "192.0.2.77", "OCF_RESKEY_volume": str(tmp_path)}
    noname = subprocess.run([str(RA), "validate-all"], env=env, capture_output=True, text=True, timeout=60)
    # the fix first, within Pacemaker's 128 characters of an exit reason
    reason = next(ln for ln in noname.stderr.splitlines() if ln.startswith("ocf-exit-reason:"))
    assert noname.returncode == 5 and "add '192.0.2.77 <name>' to /etc/hosts on every node" in reason[:128], reason
    bad = subprocess.run([str(RA), "start"], env={**env, "OCF_RESKEY_ip": "not-an-ip"}, capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 6 and "ocf-exit-reason:ip: is not an IP address" in bad.stderr


def test_a_start_with_a_volume_that_is_not_one_is_a_configuration_error(server: NlmServer, tmp_path: Path) -> None:
    """Found by a try-out: volume= with a typo started (nothing to notify) and failed only at
    the first move with NLM clients ("cannot write .../nsm-state", OCF_ERR_GENERIC)."""
    config = tmp_path / "ganesha-ha.conf"
    config.write_text(f"[node]\nruntime_dir = {tmp_path / 'run'}\n")
    wrong = agent(server, "start", config, tmp_path / "typo")
    assert wrong.returncode == 6, wrong.stderr
    assert f"ocf-exit-reason:volume={tmp_path / 'typo'} is not a ganesha-ha volume" in wrong.stderr
    assert agent(server, "monitor", config, tmp_path / "typo").returncode == 7


def test_an_sm_notify_that_exits_without_notifying_anyone_fails_the_start(server: NlmServer, tmp_path: Path) -> None:
    """Found by a try-out: in a notify directory without sm.bak/ (hand-made or damaged) the real
    sm-notify says "No hosts to notify; exiting" and exits 0; the start answered success and
    logged "sm-notify (pid None) keeps trying" although nothing was sent and nothing kept trying."""
    client = server.client_addrs[0]
    volume = tmp_path / "vol"
    (volume / ".ganesha-ha").mkdir(parents=True)
    runtime = tmp_path / "run-gha"
    config = tmp_path / "ganesha-ha.conf"
    config.write_text(f"[node]\nruntime_dir = {runtime}\n[nsm]\nstatd_dir = /var/lib/nfs\nnotify_wait = 2\n")
    store = NsmStore(server.var_lib_nfs, runtime / "nsm")
    ctx = VolumeContext(mountpoint=volume, state_dir=volume / ".ganesha-ha", volume_uuid="u", ip=server.fip)
    text = f"0100007f 000186b5 00000004 00000010 {'0' * 32} {client} {FIP_NAME}\n"
    (ctx.state_dir / "nsm.json").write_text(json.dumps({"records": {client: text}}))
    assert store.restore(ctx) == 1
    directory = store.notify_dir(ctx)
    assert directory is not None
    os.rmdir(directory / NOTIFY_DIR)           # sm.bak/: where sm-notify -P moves the records to send
    res = agent(server, "start", config, volume)
    assert res.returncode == 1, res.stderr
    assert "ocf-exit-reason:sm-notify exited (0) without notifying anyone: " in res.stderr, res.stderr
    assert "keeps trying" not in res.stderr
    assert agent(server, "monitor", config, volume).returncode == 7


def test_a_start_warns_when_the_exports_resource_saves_no_client_of_its_ip(server: NlmServer, tmp_path: Path) -> None:
    """Found by a try-out: an exports resource without ip= saves no NLM client (recovery/nsm.py),
    so its notify resource never notified anyone, silently. The exports resource's start leaves
    its `ip` in the volume's node-local active mark (nodestate.py), which the notify start reads."""
    from ganesha_ha.nodestate import NodeState

    volume = tmp_path / "vol"
    (volume / ".ganesha-ha").mkdir(parents=True)
    runtime = tmp_path / "run"
    config = tmp_path / "ganesha-ha.conf"
    config.write_text(f"[node]\nruntime_dir = {runtime}\n[nsm]\nstatd_dir = {tmp_path / 'statd'}\n")
    mark = NodeState(runtime, volume)
    for ip, said in (("", "has no ip=, so it saves no NLM client"),
                     ("10.214.90.77", "has ip=10.214.90.77, so it saves the NLM clients of 10.214.90.77"),
                     (server.fip, None)):
        mark.set_active({"mountpoint": str(volume), "server": "ganesha", "ip": ip, "exports": []})
        started = agent(server, "start", config, volume)
        assert started.returncode == 0, started.stderr
        warning = f"set ip={server.fip} on the exports resource of volume {volume}: it {said}"
        assert (warning in started.stderr) if said else ("set ip=" not in started.stderr), started.stderr
        assert agent(server, "stop", config, volume).returncode == 0
    mark.clear_active()                      # the exports resource not active here: nothing to compare with
    started = agent(server, "start", config, volume)
    assert started.returncode == 0 and "set ip=" not in started.stderr, started.stderr
    assert agent(server, "stop", config, volume).returncode == 0
