"""Faults of a volume's own ganesha.nfsd (instance mode), each against the real daemon and
the real agent: the OCF code Pacemaker gets, its one exit reason, and that nothing is left
running or harmed that should not be.

| fault | action | code | why that code |
|---|---|---|---|
| the instance killed (kill -9) | recurring monitor | 1 OCF_ERR_GENERIC | it failed (not stopped cleanly): Pacemaker stops it (which cleans up here) and recovers by its policy |
| the same | probe | 7 | nothing of the volume is served here |
| a stale pid file (a PID another process has now) | monitor / stop / start | 1 / 0 / 0 | only the lock on the pid file names the instance: the other process is never signalled |
| the port taken on the floating IP (that address, or a wildcard) | start | 4 OCF_ERR_PERM | a conflict on this node: banned here, the volume starts where the port is free |
| the D-Bus name owned by a foreign process | start | 4 | the same |
| the RecoveryRoot on the volume not a directory (a file, a link) | start | 4 | unsafe state, as every state file of the volume |
| the RecoveryRoot read-only (EROFS) | start | 1 | the volume's storage: a restart or another node may mount it writable |
| the floating IP not on this node | start | 6 OCF_ERR_CONFIGURED | the group starts the exports before the IP: wrong everywhere |
| no IPv6 address but ::1 (Ganesha 4.3 would bind every address) | start | 5 OCF_ERR_INSTALLED | this node lacks it; another may have it |
| the node's Ganesha config refuses a take-over (RecoveryBackend rados_kv) | validate-all, start | 0 | it is the shared daemon's, not the instance's |
| the instance stopped (SIGSTOP) | monitor, probe / stop | 1 / 0 | it serves nobody; known at once; a stop kills it (its exports die with it) |
| the instance hung while running (its D-Bus thread deadlocked) | monitor, probe / stop | 1 / 0 | the same, after one D-Bus wait within the action's budget; a stop gives it a SIGTERM first |
"""
from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from pathlib import Path

import pytest
from conftest import tmpfs
from ganesha_servers import NEEDS_GANESHA
from hung_dbus import hung_dbus_thread
from instance_net import (IP1, IP2, SUBNET, InstanceNode, ganesha_pids, prefix_of, reasons, show_exports,
                          volume_uuid)
from sigstop import sigstop

from ganesha_ha import linux, linux_net
from ganesha_ha.backends import ganesha_instance
from ganesha_ha.deadline import budget
from ganesha_ha.errors import InstanceConflictError, NotInstalledError
from ganesha_ha.settings import load_settings
from ganesha_ha.volume import Volume

pytestmark = NEEDS_GANESHA


def make_node(tmp_path: Path, ipv6: bool = True):
    n = InstanceNode(tmp_path, f"gha-instf-{os.getpid()}", ipv6=ipv6).create()
    try:
        with tmpfs(tmp_path / "vol") as vol:
            (vol / "data").mkdir()
            config = n.config("a")
            for args in (("volume", "init", str(vol), "--server", "ganesha", "--ganesha-mode", "instance"),
                         ("export", "add", str(vol), "data", "--client", f"{SUBNET}.0/24(rw)", "--pseudo", "/data")):
                proc = n.cli(config, *args)
                assert proc.returncode == 0, proc.stderr
            yield n, vol, config
    finally:
        n.remove()
    assert ganesha_pids(tmp_path) == []


@pytest.fixture
def setup(tmp_path):
    yield from make_node(tmp_path)


def answer(proc, code: int, *fragments: str) -> str:
    """The agent answered `code` with one exit reason holding every fragment (none for 0 and 7)."""
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    rs = reasons(proc)
    if code in (0, 7):
        assert rs == [], proc.stderr
        return ""
    assert len(rs) == 1, proc.stderr
    for f in fragments:
        assert f in rs[0], rs[0]
    print(f"exit reason ({code}): {rs[0]}")
    return rs[0]


def start_and_kill(node: InstanceNode, vol: Path, config: Path) -> None:
    """Start the volume, then kill -9 its instance (and see it gone)."""
    answer(node.agent("start", config, vol, IP1), 0)
    [pid] = ganesha_pids(node.work)
    os.kill(pid, signal.SIGKILL)
    assert linux.terminate(pid, None, 0.1)[0]


def test_a_killed_instance_is_seen_by_the_next_monitor(setup):
    node, vol, config = setup
    start_and_kill(node, vol, config)
    answer(node.agent("monitor", config, vol, IP1, CRM_meta_interval="10000"), 1,
           "ganesha.nfsd instance not running (exited or killed); its log: ")
    answer(node.agent("monitor", config, vol, IP1), 7)           # a probe: nothing served here
    answer(node.agent("start", config, vol, IP1), 0)             # a start with no stop before it
    answer(node.agent("stop", config, vol, IP1), 0)
    answer(node.agent("start", config, vol, IP1), 0)
    [export_id] = [e["export_id"] for e in json.loads((vol / ".ganesha-ha" / "registry.json").read_text())["exports"]]
    assert show_exports(node.bus.address, prefix_of(vol)) == {0: "/", export_id: f"{vol}/data"}
    answer(node.agent("monitor", config, vol, IP1, CRM_meta_interval="10000"), 0)
    answer(node.agent("stop", config, vol, IP1), 0)


def test_a_stale_pid_file_is_never_trusted(setup):
    node, vol, config = setup
    start_and_kill(node, vol, config)
    other = node.spawn(["sleep", "300"])
    [pid_file] = node.work.glob("run-a/ganesha/instances/*/ganesha.pid")
    pid_file.write_text(f"{other.pid}\n")
    answer(node.agent("monitor", config, vol, IP1, CRM_meta_interval="10000"), 1, "not running", str(pid_file))
    answer(node.agent("stop", config, vol, IP1), 0)
    assert other.poll() is None, "the process the stale pid file names was signalled"
    proc = node.agent("start", config, vol, IP1)
    answer(proc, 0)
    assert f"removed stale pid file {pid_file}" in proc.stderr
    [new] = ganesha_pids(node.work)
    assert int(pid_file.read_text().split()[0]) == new != other.pid
    answer(node.agent("stop", config, vol, IP1), 0)
    assert other.poll() is None and ganesha_pids(node.work) == []


LISTEN = ("import socket, sys; s = socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET); "
          "s.bind((sys.argv[1], 2049)); s.listen(); print('ready', flush=True); __import__('time').sleep(600)")


@pytest.mark.parametrize("address", [IP1, "0.0.0.0", "::"])
def test_the_port_taken_on_the_floating_ip(setup, address):
    node, vol, config = setup
    holder = node.spawn([sys.executable, "-c", LISTEN, address])
    assert holder.stdout.readline().strip() == "ready"
    reason = answer(node.agent("start", config, vol, IP1), 4, f"port 2049 on {IP1} is already taken",
                    f"by {linux.comm(holder.pid)} (pid {holder.pid})", "shared Ganesha must bind its own addresses")
    assert "import socket" not in reason   # its name and PID, not its command line
    assert ganesha_pids(node.work) == [] and holder.poll() is None


def test_a_port_taken_while_the_instance_starts_is_diagnosed_from_its_log(setup, monkeypatch):
    """The race the check before the start cannot close: Ganesha itself fails to bind
    ("error 98"), exits, and the start says why (in-process, past the check)."""
    from ganesha_ha.backends.ganesha_instance import GaneshaInstanceBackend

    node, vol, config = setup
    holder = node.spawn([sys.executable, "-c", LISTEN, IP1])
    assert holder.stdout.readline().strip() == "ready"
    monkeypatch.setattr(GaneshaInstanceBackend, "_check_port", lambda self, ip: None)
    with node.entered(), pytest.raises(InstanceConflictError, match=r"could not bind it \(ganesha.nfsd: Cannot bind "
                                                                     r"NFS tcp6 socket, error 98"):
        Volume(vol, load_settings(config), ip=IP1).start()
    assert ganesha_pids(node.work) == []


OWN = ("import dbus, sys; c = dbus.bus.BusConnection(sys.argv[1]); "
       "assert c.request_name(sys.argv[2], dbus.bus.NAME_FLAG_DO_NOT_QUEUE) == 1; print('ready', flush=True); "
       "__import__('time').sleep(600)")


def test_the_bus_name_owned_by_a_foreign_process(setup):
    node, vol, config = setup
    name = f"{prefix_of(vol)}.org.ganesha.nfsd"
    holder = node.spawn([sys.executable, "-c", OWN, node.bus.address, name])
    assert holder.stdout.readline().strip() == "ready"
    answer(node.agent("start", config, vol, IP1), 4, f"D-Bus name {name} is owned by {linux.comm(holder.pid)} (pid {holder.pid})")
    assert ganesha_pids(node.work) == [] and holder.poll() is None
    holder.kill()
    holder.wait(5)
    answer(node.agent("start", config, vol, IP1), 0)
    answer(node.agent("stop", config, vol, IP1), 0)


def test_a_recovery_root_that_is_not_a_directory(setup):
    node, vol, config = setup
    root = vol / ".ganesha-ha" / "nfs4-recovery"
    root.write_text("not a directory\n")
    answer(node.agent("start", config, vol, IP1), 4, f"{root} is not a directory")
    root.unlink()
    root.symlink_to("/tmp")
    answer(node.agent("start", config, vol, IP1), 4, f"{root} is a symbolic link")
    root.unlink()
    assert ganesha_pids(node.work) == []


def test_a_read_only_recovery_root(setup):
    node, vol, config = setup
    root = vol / ".ganesha-ha" / "nfs4-recovery"
    root.mkdir(mode=0o700)
    linux.bind_mount(root, root)
    linux.mount(None, root, None, linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY)
    try:
        answer(node.agent("start", config, vol, IP1), 1, "NFSv4 client records cannot be kept in",
               "Read-only file system", "could not reclaim")
    finally:
        linux.umount(root)
    assert ganesha_pids(node.work) == []
    answer(node.agent("start", config, vol, IP1), 0)
    answer(node.agent("stop", config, vol, IP1), 0)


def test_the_floating_ip_not_on_this_node(setup):
    node, vol, config = setup
    answer(node.agent("start", config, vol, f"{SUBNET}.99"), 6, f"{SUBNET}.99 is not an address of this node",
           "start the IP before the exports")
    answer(node.agent("validate-all", config, vol, f"{SUBNET}.99"), 0)   # at resource creation: not up yet
    answer(node.agent("validate-all", config, vol, ""), 6, "ip: a volume served by its own Ganesha instance needs its floating IP")
    assert ganesha_pids(node.work) == []


def test_a_node_without_ipv6_but_loopback(tmp_path, monkeypatch):
    """Ganesha 4.3 with no IPv6 address but ::1 binds port 2049 on every address (its
    Bind_Addr bug; a second instance then dies): refused before it starts, and, should the
    check be wrong, caught from its listening socket after it started, and ended."""
    from ganesha_ha.backends.ganesha_instance import GaneshaInstanceBackend

    for node, vol, config in make_node(tmp_path, ipv6=False):
        answer(node.agent("start", config, vol, IP1), 5, "no IPv6 address but ::1", "every address")
        assert ganesha_pids(node.work) == []
        monkeypatch.setattr(linux_net, "ipv6_addresses", lambda: ["::1", "fd00::9"])   # the check fooled
        with node.entered(), pytest.raises(NotInstalledError, match="bound port 2049 on every address"):
            Volume(vol, load_settings(config), ip=IP1).start()
        assert ganesha_pids(node.work) == []
        assert GaneshaInstanceBackend   # the backend whose check was fooled


def test_the_system_bus_policy(setup):
    """On a bus with the system bus's default policy, an instance cannot own its name (its
    first element differs per volume, nfs-ganesha's policy names org.ganesha.nfsd only):
    OCF_ERR_INSTALLED, this node lacks ganesha-ha's policy. With conf/dbus/ganesha-ha.conf
    (installed by the package) it owns it and ganesha-ha's calls go through."""
    from conftest import ROOT

    node, vol, config = setup
    node.strict_bus(None)
    answer(node.agent("start", config, vol, IP1), 5, "the system bus does not let the volume's ganesha.nfsd own",
           "install ganesha-ha's D-Bus policy")
    assert ganesha_pids(node.work) == []
    node.strict_bus(ROOT / "conf" / "dbus" / "ganesha-ha.conf")
    answer(node.agent("start", config, vol, IP1), 0)
    answer(node.agent("monitor", config, vol, IP1, CRM_meta_interval="10000"), 0)
    (vol / "more").mkdir()
    proc = node.cli(config, "export", "add", str(vol), "more", "--client", f"{SUBNET}.0/24(rw)", "--pseudo", "/more")
    assert proc.returncode == 0 and ": live" in proc.stdout, proc.stderr
    answer(node.agent("stop", config, vol, IP1), 0)


def test_the_node_s_own_ganesha_config_is_not_the_instance_s(setup, tmp_path):
    """The node's Ganesha config (ganesha_config) says what the node's shared daemon would do
    in a take-over; an instance has a config of its own (RecoveryBackend fs, its volume's
    server scope). A node config the shared mode refuses (RecoveryBackend rados_kv) stops
    nothing of an instance volume: validate-all and start succeed, and say nothing of it."""
    node, vol, config = setup
    node_conf = tmp_path / "node-ganesha.conf"
    node_conf.write_text("NFSV4 { RecoveryBackend = rados_kv; }\n")
    text = config.read_text()
    config.write_text(text.replace("[ganesha]\n", f"[ganesha]\nganesha_config = {node_conf}\n", 1))
    for action in ("validate-all", "start"):
        proc = node.agent(action, config, vol, IP1)
        answer(proc, 0)
        assert "rados_kv" not in proc.stderr and "RecoveryBackend" not in proc.stderr, proc.stderr
    answer(node.agent("stop", config, vol, IP1), 0)


def test_an_instance_on_another_ip_is_not_running(setup):
    """An instance left on another address (a `volume start --ip`, an earlier ip= of the
    resource) serves no client of the resource's IP: the monitor fails with both addresses
    (not 0), and the start ends it by its PID and starts it on the right IP (not "already
    started")."""
    node, vol, config = setup
    with node.entered():
        proc = node.cli(config, "volume", "start", str(vol), "--ip", IP2)
    assert proc.returncode == 0, proc.stderr
    [wrong] = ganesha_pids(node.work)
    answer(node.agent("monitor", config, vol, IP1, CRM_meta_interval="10000"), 1,
           f"instance (pid {wrong}) listens on {IP2}, the resource's ip is {IP1}")
    proc = node.agent("start", config, vol, IP1)
    answer(proc, 0)
    assert f"ended instance pid {wrong}: it listened on {IP2}, not {IP1}" in proc.stderr, proc.stderr
    [right] = ganesha_pids(node.work)
    assert right != wrong
    with node.entered():
        listening = {a for a, _ in linux_net.tcp_listeners(2049)}
    assert listening and all(a.endswith(IP1) for a in listening), listening
    answer(node.agent("monitor", config, vol, IP1, CRM_meta_interval="10000"), 0)
    answer(node.agent("stop", config, vol, IP1), 0)


def test_a_wedged_instance_is_killed_promptly(setup):
    """A SIGSTOPped instance answers nothing: the monitor says so at once (not after the
    D-Bus timeout), and the stop kills it without first waiting on D-Bus or on a SIGTERM it
    cannot receive, and says so."""
    import time

    node, vol, config = setup
    answer(node.agent("start", config, vol, IP1), 0)
    [pid] = ganesha_pids(node.work)
    sigstop(pid)   # every thread, as the monitor's /proc check and the stop's kill presume of a stopped process
    t0 = time.monotonic()
    answer(node.agent("monitor", config, vol, IP1, CRM_meta_interval="10000"), 1,
           f"instance (pid {pid}) is stopped")
    monitor_s = time.monotonic() - t0
    answer(node.agent("monitor", config, vol, IP1), 1, "1 export(s) still live", "is stopped")   # a probe: not 7
    t0 = time.monotonic()
    proc = node.agent("stop", config, vol, IP1, CRM_meta_timeout="20000")
    stop_s = time.monotonic() - t0
    answer(proc, 0)
    assert f"killed the volume's instance pid {pid} as it was stopped" in proc.stderr, proc.stderr
    assert ganesha_pids(node.work) == []
    print(f"monitor {monitor_s:.1f} s, stop {stop_s:.1f} s")
    assert monitor_s < 5 and stop_s < 5      # before: the stop took 16 s of Pacemaker's default 20


def waited(reason: str) -> float:
    """The seconds an exit reason says a D-Bus call was waited for ("... within 2.4 s")."""
    return float(re.search(r"within ([0-9.]+) s", reason)[1])


def test_an_instance_hung_while_running(setup):
    """Its D-Bus thread hangs while the process runs (tests/hung_dbus.py: a deadlock, not a
    SIGSTOP): the monitor fails (1) with the instance's PID and what it did not answer, the
    probe too (not 7: its exports may still be served), each waiting once, within the D-Bus
    budget of its timeout (deadline.py); the stop ends it by its PID (SIGTERM, then SIGKILL
    as its shutdown waits on the hung thread) and succeeds within its timeout. Before: the
    probe waited the D-Bus timeout twice and answered "not running"."""
    node, vol, config = setup
    answer(node.agent("start", config, vol, IP1), 0)
    [pid] = ganesha_pids(node.work)
    timeout = 10.0   # s: each call 0.4 x 10 = 4 s (the config's dbus_timeout, 5, is the bound above it)
    ms = str(int(timeout * 1000))
    with hung_dbus_thread(pid):
        assert not linux.is_stopped(pid)
        for params in ({"CRM_meta_interval": "10000"}, {}):   # a recurring monitor, a probe
            t0 = time.monotonic()
            proc = node.agent("monitor", config, vol, IP1, CRM_meta_timeout=ms, **params)
            took = time.monotonic() - t0
            reason = answer(proc, 1, f"the volume's ganesha.nfsd instance (pid {pid}) did not answer D-Bus ShowExports "
                                     "within ", ": hung? a stop ends it")
            assert waited(reason) <= min(5.0, 0.4 * timeout) <= budget(timeout)
            print(f"monitor {params}: {took:.2f} s")
            assert took < min(budget(timeout), 2 * waited(reason)), (params, took)   # one wait, in time
        t0 = time.monotonic()
        proc = node.agent("stop", config, vol, IP1, CRM_meta_timeout=ms)
        took = time.monotonic() - t0
        answer(proc, 0)
        assert (f"killed the volume's instance pid {pid} as it was hung (did not answer D-Bus ShowExports within "
                f"{ganesha_instance.STOP_ASK:g} s), after SIGTERM did not end it within "
                f"{ganesha_instance.HUNG_TERM:g} s") in proc.stderr, proc.stderr
        print(f"stop: {took:.2f} s")
        assert took < timeout, took
        assert ganesha_pids(node.work) == []
    answer(node.agent("start", config, vol, IP1), 0)    # and it starts again
    answer(node.agent("monitor", config, vol, IP1, CRM_meta_interval="10000"), 0)
    answer(node.agent("stop", config, vol, IP1), 0)


def test_the_port_taken_by_another_volume_s_instance(setup, tmp_path):
    """Two volumes given one IP: the second's start names the first's instance (its volume),
    and the advice is one IP per volume, not the shared daemon's."""
    node, vol, config = setup
    answer(node.agent("start", config, vol, IP1), 0)
    try:
        with tmpfs(tmp_path / "vol2") as vol2:
            proc = node.cli(config, "volume", "init", str(vol2), "--server", "ganesha", "--ganesha-mode", "instance")
            assert proc.returncode == 0, proc.stderr
            reason = answer(node.agent("start", config, vol2, IP1), 4,
                            f"port 2049 on {IP1} is taken by the instance of volume {volume_uuid(vol)} (pid ",
                            "two volumes cannot share an IP")
            assert "shared Ganesha" not in reason and len(reason) <= 150, reason
    finally:
        answer(node.agent("stop", config, vol, IP1), 0)


@pytest.mark.parametrize("content, why", [("garbage\n", "not a number"),
                                          ("4294967295\n", "past Ganesha's 32-bit epoch")])
def test_a_bad_instance_epoch_file(setup, content, why):
    """Ganesha keeps 32 bits of its epoch (nfs4_clientid.c): a file that is not a number, or
    at 2**32 - 1 and past, is not used (a warning says why) and the epoch is the time."""
    import time

    node, vol, config = setup
    epoch_file = vol / ".ganesha-ha" / "instance-epoch"
    epoch_file.write_text(content)
    proc = node.agent("start", config, vol, IP1)
    answer(proc, 0)
    assert f"{epoch_file} ignored (it holds" in proc.stderr and why in proc.stderr, proc.stderr
    [pid] = ganesha_pids(node.work)
    argv = linux.cmdline(pid)
    epoch = int(argv[argv.index("-E") + 1])
    assert abs(epoch - time.time()) < 60 and int(epoch_file.read_text()) == epoch
    answer(node.agent("stop", config, vol, IP1), 0)


def test_a_grace_shorter_than_the_lease_at_start(setup):
    """The node's [instance] times changed after `volume init`: the start warns (it serves:
    OCF_ERR_CONFIGURED would stop the volume everywhere for one node's tuning)."""
    node, vol, config = setup
    assert node.config("a", lease_lifetime=40) == config
    proc = node.agent("start", config, vol, IP1)
    answer(proc, 0)
    assert "is shorter than Lease_Lifetime 40 s (this node's [instance])" in proc.stderr, proc.stderr
    answer(node.agent("stop", config, vol, IP1), 0)


def test_set_times_changes_an_instance_volume_s_grace_and_lease(setup, tmp_path):
    """`volume set-times` (after `volume init`, which a second time is refused): checked as
    init checks them, kept on the volume, and the instance's next start has them."""
    node, vol, config = setup
    proc = node.cli(config, "volume", "set-times", str(vol), "--lease-lifetime", "30")
    assert proc.returncode == 2 and "is shorter than the lease (30 s)" in proc.stderr, proc.stderr
    proc = node.cli(config, "volume", "set-times", str(vol), "--grace-period", "45", "--lease-lifetime", "30")
    assert proc.returncode == 0 and "grace_period 45 s, lease_lifetime 30 s" in proc.stdout, proc.stderr
    registry = json.loads((vol / ".ganesha-ha" / "registry.json").read_text())
    assert registry["volume"]["instance"] == {"grace_period": 45, "lease_lifetime": 30}
    proc = node.cli(config, "volume", "set-times", str(vol), "--grace-period", "29")
    assert proc.returncode == 2 and "29 s is shorter than the lease (30 s)" in proc.stderr, proc.stderr
    answer(node.agent("start", config, vol, IP1), 0)
    [conf_file] = node.work.glob("run-a/ganesha/instances/*/ganesha.conf")
    text = conf_file.read_text()
    assert "Grace_Period = 45;" in text and "Lease_Lifetime = 30;" in text
    answer(node.agent("stop", config, vol, IP1), 0)
    with tmpfs(tmp_path / "shared") as shared:
        assert node.cli(config, "volume", "init", str(shared), "--server", "ganesha").returncode == 0
        proc = node.cli(config, "volume", "set-times", str(shared), "--grace-period", "60")
        assert proc.returncode == 2 and "a setting of a volume with its own Ganesha instance" in proc.stderr
