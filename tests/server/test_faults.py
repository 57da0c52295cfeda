"""Faults the first suites did not cover (issue 7, point 3): a D-Bus call that hangs, exportfs
missing or failing, the disk full while the registry is written.

Each fault is checked through the CLI (exit code, one line on stderr) and, where the agent
meets it, through the resource agent as Pacemaker runs it (ra/exports with a clean
environment: OCF code, one ERROR line, elapsed time), and always: the registry is unchanged.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import ROOT, needs_root
from sigstop import stopped

from ganesha_ha import linux
from ganesha_ha.lab.procs import wait_until

AGENT = str(ROOT / "ra" / "exports")
DBUS_TIMEOUT = 1.0   # seconds, written into the test configs
SLACK = 2.5          # interpreter start-up and teardown on a loaded 2-core machine


def run_agent(action: str, params: dict[str, str], timeout: float = 30) -> tuple[subprocess.CompletedProcess, float]:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "OCF_ROOT": "/usr/lib/ocf",
           "OCF_RESOURCE_INSTANCE": "gha_faults"}
    env.update({f"OCF_RESKEY_{k}": v for k, v in params.items()})
    t0 = time.monotonic()
    proc = subprocess.run([AGENT, action], env=env, capture_output=True, text=True, timeout=timeout)
    return proc, time.monotonic() - t0


def run_cli(config: Path, *args: str, timeout: float = 30) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "ganesha_ha.cli", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=timeout)
    return proc, time.monotonic() - t0


def assert_cli_failure(proc: subprocess.CompletedProcess, code: int, fragment: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("ganesha-ha: error: "), proc.stderr
    assert fragment in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def assert_agent_failure(proc: subprocess.CompletedProcess, code: int, fragment: str) -> None:
    """The agent's answer to Pacemaker: the code and one exit reason saying why (logged as an
    ERROR where the cluster logs, not a second time on stderr)."""
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    reasons = [line for line in proc.stderr.splitlines() if line.startswith("ocf-exit-reason:")]
    assert len(reasons) == 1 and fragment in reasons[0], proc.stderr
    assert ": ERROR: " not in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def registry_bytes(volume: Path) -> bytes:
    return (volume / ".ganesha-ha" / "registry.json").read_bytes()


# ---- a D-Bus call that hangs ----------------------------------------------------------------

@pytest.fixture
def active_ganesha_volume(ganesha, tmpfs_volume):
    """A ganesha volume with one live export, started here; the config's D-Bus timeout is 1 s."""
    ganesha.config.write_text(ganesha.config.read_text().replace("dbus_timeout = 5",
                                                                 f"dbus_timeout = {DBUS_TIMEOUT:g}"))
    (tmpfs_volume / "data").mkdir()
    (tmpfs_volume / "more").mkdir()
    ganesha.cli("volume", "init", str(tmpfs_volume), "--server", "ganesha", "--id-range", "700-799", check=True)
    ganesha.cli("export", "add", str(tmpfs_volume), "data", "--client", "127.0.0.1", check=True)
    params = {"server": "ganesha", "volume": str(tmpfs_volume), "config": str(ganesha.config),
              "CRM_meta_timeout": "6000"}
    proc, _ = run_agent("start", params)
    assert proc.returncode == 0, proc.stderr
    return ganesha, tmpfs_volume, params


def check_hung_dbus(lab, vol: Path, params: dict[str, str], pid: int, fragment: str) -> None:
    """With `pid` stopped: the CLI and every agent action answer in time, and nothing is written."""
    before = registry_bytes(vol)
    recurring = params | {"CRM_meta_interval": "10000"}
    with stopped(pid):
        proc, took = run_cli(lab.config, "export", "add", str(vol), "more", "--client", "127.0.0.1")
        assert_cli_failure(proc, 6, fragment)
        assert took < DBUS_TIMEOUT + SLACK, f"export add took {took:.1f} s"

        proc, took = run_agent("monitor", recurring)
        assert_agent_failure(proc, 1, fragment)   # generic: a local restart, never fatal
        assert took < DBUS_TIMEOUT + SLACK, f"monitor took {took:.1f} s"

        proc, took = run_agent("start", params)
        assert_agent_failure(proc, 1, fragment)
        assert took < int(params["CRM_meta_timeout"]) / 1000, f"start took {took:.1f} s"

        # a stop that cannot confirm the exports are gone must fail (Pacemaker fences),
        # but in time and with a reason, not by being killed at its timeout
        proc, took = run_agent("stop", params)
        assert proc.returncode == 1 and "stop failed" in proc.stderr and fragment in proc.stderr, proc.stderr
        assert took < DBUS_TIMEOUT + SLACK, f"stop took {took:.1f} s"
        assert registry_bytes(vol) == before
    # resumed: everything works again and nothing was lost
    proc, _ = run_agent("monitor", recurring)
    assert proc.returncode == 0, proc.stderr
    proc, _ = run_cli(lab.config, "export", "add", str(vol), "more", "--client", "127.0.0.1")
    assert proc.returncode == 0, proc.stderr
    assert set(lab.show_exports()) - {0} == {700, 701}


@needs_root
def test_hung_ganesha_is_a_timeout_not_a_hang(active_ganesha_volume):
    """ganesha.nfsd stopped (SIGSTOP): the bus answers, Ganesha never does."""
    lab, vol, params = active_ganesha_volume
    check_hung_dbus(lab, vol, params, lab.daemon.pid, "did not answer")


@needs_root
def test_hung_bus_daemon_is_a_timeout_not_a_hang(active_ganesha_volume):
    """The dbus-daemon itself stopped: connecting never completes (libdbus has no timeout
    on the authentication and Hello of a new connection)."""
    lab, vol, params = active_ganesha_volume
    check_hung_dbus(lab, vol, params, lab.bus.proc.pid, "did not answer")


@needs_root
def test_ganesha_hung_while_running(active_ganesha_volume):
    """The node's shared ganesha.nfsd hangs while running (its D-Bus thread deadlocked:
    tests/hung_dbus.py): the monitor and the probe fail (1) naming its PID and what it did
    not answer, each after one D-Bus wait, within the budget of its timeout (deadline.py);
    the stop fails in time too, with the same reason (the exports cannot be withdrawn from it: restart nfs-ganesha)
    (Pacemaker then fences the node: the README's agent answers). It is the node's service,
    serving other volumes too: ganesha-ha never signals it. Nothing is written meanwhile, and
    once it answers again everything works."""
    from hung_dbus import hung_dbus_thread

    from ganesha_ha.deadline import budget

    lab, vol, params = active_ganesha_volume
    lab.config.write_text(lab.config.read_text().replace(f"dbus_timeout = {DBUS_TIMEOUT:g}", "dbus_timeout = 30"))
    timeout = 8.0   # s: each call 0.4 x 8 = 3.2 s (dbus_timeout 30 is the bound above it), a budget of 6 s
    params = params | {"CRM_meta_timeout": str(int(timeout * 1000))}
    pid, before = lab.daemon.pid, registry_bytes(vol)
    with hung_dbus_thread(pid):
        for action, extra in (("monitor", {"CRM_meta_interval": "10000"}), ("monitor", {}), ("stop", {})):
            proc, took = run_agent(action, params | extra)
            assert_agent_failure(proc, 1, f"ganesha.nfsd (pid {pid}) did not answer D-Bus ShowExports within 3.2 s: "
                                          "hung? restart nfs-ganesha")
            print(f"{action} {extra}: {took:.2f} s")
            assert took < min(budget(timeout), 2 * 3.2), (action, extra, took)   # one wait, in time
        assert "ocf-exit-reason:stop failed: " in proc.stderr
        assert registry_bytes(vol) == before
        assert lab.daemon.proc.poll() is None and not linux.is_stopped(pid)
    proc, _ = run_agent("monitor", params | {"CRM_meta_interval": "10000"})
    assert proc.returncode == 0, proc.stderr
    assert lab.daemon.pid == pid and set(lab.show_exports()) - {0} == {700}


@pytest.fixture
def fake_ganesha(tmp_path):
    """A private bus with a fake Ganesha that never answers AddExport (tests/fake_ganesha.py)."""
    from ganesha_ha.lab.ganesha_daemon import PrivateBus

    bus = PrivateBus(tmp_path / "fbus").start()
    proc = subprocess.Popen([sys.executable, str(Path(__file__).parent.parent / "fake_ganesha.py"), bus.address,
                             "AddExport"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        config = tmp_path / "fake.conf"
        config.write_text(f"[ganesha]\nbus_address = {bus.address}\ndbus_timeout = {DBUS_TIMEOUT:g}\n"
                          f"recovery_root = {tmp_path / 'recovery'}\n[node]\nruntime_dir = {tmp_path / 'run'}\n")
        yield config
    finally:
        proc.kill()
        proc.wait()
        bus.stop()


def registry_exports(volume: Path) -> list:
    import json

    return json.loads(registry_bytes(volume))["exports"]


@needs_root
def test_add_export_that_never_answers_rolls_back(fake_ganesha, tmpfs_volume):
    """Ganesha answers ShowExports but never AddExport: the change was already in the
    registry when the call hung; it is rolled back and the CLI says the server timed out
    (exit 6, not 7: nothing was refused, the answer never came)."""
    config = fake_ganesha
    (tmpfs_volume / "d").mkdir()
    run_cli(config, "volume", "init", str(tmpfs_volume), "--server", "ganesha", "--id-range", "10-19")
    proc, _ = run_cli(config, "volume", "start", str(tmpfs_volume))
    assert proc.returncode == 0, proc.stderr
    before = registry_exports(tmpfs_volume)
    proc, took = run_cli(config, "export", "add", str(tmpfs_volume), "d", "--client", "127.0.0.1")
    assert_cli_failure(proc, 6, "did not answer D-Bus AddExport within 1 s")
    assert "rolled back" in proc.stderr
    # the best-effort withdraw after the failure must not add its own wait without bound
    assert took < 2 * DBUS_TIMEOUT + SLACK, f"export add took {took:.1f} s"
    assert registry_exports(tmpfs_volume) == before == []
    assert [f for f in os.listdir(tmpfs_volume / ".ganesha-ha") if ".tmp-" in f] == []


@needs_root
def test_stop_with_the_bus_gone(active_ganesha_volume):
    """The bus daemon dies: ganesha.nfsd dies with it (libdbus exits a process whose shared
    bus connection drops), and a Ganesha without the bus never got our exports, which only
    come over D-Bus. So no bus means none of our exports is served: the stop succeeds
    (nothing to withdraw), a recurring monitor fails (generic), a start waits and fails."""
    lab, vol, params = active_ganesha_volume
    lab.bus.stop()
    assert wait_until(lambda: lab.daemon.proc.poll() is not None, 10), "ganesha.nfsd outlived its bus"
    proc, _ = run_agent("monitor", params | {"CRM_meta_interval": "10000"})
    assert_agent_failure(proc, 1, "cannot reach D-Bus")
    proc, took = run_agent("start", params | {"CRM_meta_timeout": "3000"})
    assert_agent_failure(proc, 1, "cannot reach D-Bus")
    print(f"start without a bus: {took:.2f} s")
    assert took < 3, f"start took {took:.1f} s, its timeout is 3 s"   # Pacemaker's own bound: never widened
    proc, _ = run_agent("stop", params)
    assert proc.returncode == 0 and "stopped, 0 live exports withdrawn" in proc.stderr, proc.stderr


# ---- exportfs missing or failing -----------------------------------------------------------

FAILING_EXPORTFS = """#!/bin/sh
echo "exportfs: could not open /var/lib/nfs/.etab.lock for locking: errno 30 (Read-only file system)" >&2
exit 1
"""
# answers the "is it usable" call (no arguments) and the -u of a stop, refuses every export
REFUSING_EXPORTFS = """#!/bin/sh
[ $# -eq 0 ] && exit 0
case "$1" in -u) exec {real} "$@";; esac
echo "exportfs: Failed to stat $2: Permission denied" >&2
exit 1
"""


def knfsd_config(path: Path, runtime: Path, exportfs: str) -> None:
    path.write_text(f"[knfsd]\nexportfs = {exportfs}\n[node]\nruntime_dir = {runtime}\n")


def fake_program(path: Path, text: str) -> str:
    path.write_text(text)
    path.chmod(0o755)
    return str(path)


@contextmanager
def knfsd_started(volume: Path, tmp_path: Path):
    """A knfsd volume started with the real exportfs in a private /var/lib/nfs, export d live."""
    from knfsd_ns import REAL_EXPORTFS, private_nfs_state, skip_reason

    if skip_reason():
        pytest.skip(skip_reason())
    config = tmp_path / "knfsd.conf"
    knfsd_config(config, tmp_path / "run", REAL_EXPORTFS)
    with private_nfs_state(tmp_path / "ns") as state:
        for d in ("d", "e"):
            (volume / d).mkdir()
        for args in (("volume", "init", str(volume), "--server", "knfsd"),
                     ("volume", "start", str(volume)),
                     ("export", "add", str(volume), "d", "--client", "127.0.0.1(rw)")):
            proc, _ = run_cli(config, *args)
            assert proc.returncode == 0, proc.stderr
        params = {"server": "knfsd", "volume": str(volume), "config": str(config),
                  "CRM_meta_timeout": "3000"}
        yield config, volume, state, params


@pytest.fixture
def knfsd_active(tmpfs_volume, tmp_path):
    with knfsd_started(tmpfs_volume, tmp_path) as started:
        yield started


def live_lines(state: Path, volume: Path) -> list[str]:
    return [l for l in (state / "etab").read_text().splitlines() if l.startswith(f"{volume}/")]


@needs_root
@pytest.mark.parametrize("kind", ["missing", "failing"])
def test_exportfs_missing_or_failing(knfsd_active, tmp_path, kind):
    """CLI: exit 6, one line, registry unchanged. Agent: a missing exportfs is OCF_ERR_INSTALLED
    (node-local: the resource moves), a failing one OCF_ERR_GENERIC (local recovery); neither
    is OCF_ERR_CONFIGURED, which would stop the resource on every node."""
    config, vol, state, params = knfsd_active
    before, etab = registry_bytes(vol), live_lines(state, vol)
    assert len(etab) == 1
    if kind == "missing":
        exe, code, ocf_rc, fragment = str(tmp_path / "nowhere" / "exportfs"), 6, 5, "not found or not executable"
    else:
        exe, code, ocf_rc, fragment = (fake_program(tmp_path / "exportfs", FAILING_EXPORTFS), 6, 1,
                                       "exportfs failed (exit 1): could not open /var/lib/nfs/.etab.lock")
    knfsd_config(config, tmp_path / "run", exe)

    for args in (("export", "add", str(vol), "e", "--client", "127.0.0.1"),
                 ("export", "remove", str(vol), "d"),
                 ("volume", "start", str(vol))):
        proc, _ = run_cli(config, *args)
        assert_cli_failure(proc, code, fragment)
    recurring = params | {"CRM_meta_interval": "10000"}
    for action, p in (("monitor", recurring), ("start", params)):
        proc, took = run_agent(action, p)
        assert_agent_failure(proc, ocf_rc, fragment)
        print(f"{action} with exportfs {kind}: {took:.2f} s")
        assert took < 3, f"{action} took {took:.1f} s, its timeout is 3 s"   # Pacemaker's own bound
    # a probe answers the same code (5: "cannot run here", 1: "failed here"), never 6, and says why
    proc, _ = run_agent("monitor", params)
    assert_agent_failure(proc, ocf_rc, fragment)
    # validate-all checks the configured exportfs, not whichever one is on PATH
    proc, _ = run_agent("validate-all", params)
    if kind == "missing":
        assert_agent_failure(proc, 5, fragment)
    else:
        assert proc.returncode == 0, proc.stderr  # there; validate-all runs nothing
    # the export is still in etab and nothing can withdraw it: a stop that said "stopped"
    # would let the volume move while this node still exports it
    proc, _ = run_agent("stop", params)
    assert proc.returncode == 1 and "stop failed" in proc.stderr and fragment in proc.stderr, proc.stderr
    assert registry_bytes(vol) == before and live_lines(state, vol) == etab
    assert [f for f in os.listdir(vol / ".ganesha-ha") if ".tmp-" in f] == []


@needs_root
def test_exportfs_refusing_an_export_rolls_back(knfsd_active, tmp_path):
    """exportfs runs but refuses the new export: exit 7, registry and etab as before."""
    from knfsd_ns import REAL_EXPORTFS

    config, vol, state, params = knfsd_active
    etab = live_lines(state, vol)      # the registry's bytes differ after a rollback (its generation rises)
    knfsd_config(config, tmp_path / "run",
                 fake_program(tmp_path / "exportfs", REFUSING_EXPORTFS.format(real=REAL_EXPORTFS)))
    proc, _ = run_cli(config, "export", "add", str(vol), "e", "--client", "127.0.0.1(rw)")
    assert_cli_failure(proc, 7, "Permission denied")
    assert "rolled back" in proc.stderr
    assert [e["path"] for e in registry_exports(vol)] == ["d"]
    assert live_lines(state, vol) == etab
    proc, _ = run_agent("monitor", params | {"CRM_meta_interval": "10000"})
    assert proc.returncode == 0, proc.stderr


# ---- disk full -------------------------------------------------------------------------------

@pytest.fixture
def small_volume(tmp_path):
    """A 64 KiB tmpfs: a volume that a few writes fill."""
    from conftest import tmpfs

    with tmpfs(tmp_path / "small", "64k", "gha-test-small") as mp:
        yield mp


def fill(volume: Path) -> Path:
    """Write a file until the volume has no block left."""
    import errno

    filler = volume / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    assert os.statvfs(volume).f_bavail == 0
    return filler


def temp_files(volume: Path) -> list[str]:
    return [f for f in os.listdir(volume / ".ganesha-ha") if ".tmp-" in f]


@needs_root
def test_disk_full_while_writing_the_registry(small_volume, tmp_path):
    """Every change fails with one line and exit 3; the registry is byte for byte the old
    one, no temp file is left; with space again the same change works."""
    vol = small_volume
    config = tmp_path / "gha.conf"
    config.write_text(f"[node]\nruntime_dir = {tmp_path / 'run'}\n")
    for d in ("a", "b"):
        (vol / d).mkdir()
    for args in (("volume", "init", str(vol), "--server", "knfsd"),
                 ("export", "add", str(vol), "a", "--client", "127.0.0.1")):
        proc, _ = run_cli(config, *args)
        assert proc.returncode == 0, proc.stderr
    before = registry_bytes(vol)
    filler = fill(vol)
    for args in (("export", "add", str(vol), "b", "--client", "127.0.0.1"),
                 ("export", "update", str(vol), "a", "--client", "127.0.0.2"),
                 ("export", "remove", str(vol), "a")):
        proc, _ = run_cli(config, *args)
        assert_cli_failure(proc, 3, "no space left on the volume; the previous state is unchanged")
        assert registry_bytes(vol) == before
        assert temp_files(vol) == []
    proc, _ = run_cli(config, "export", "list", str(vol))
    assert proc.returncode == 0 and "127.0.0.1" in proc.stdout, "a full volume is still readable"
    filler.unlink()
    proc, _ = run_cli(config, "export", "add", str(vol), "b", "--client", "127.0.0.1")
    assert proc.returncode == 0, proc.stderr
    assert [e["path"] for e in registry_exports(vol)] == ["a", "b"]


@needs_root
def test_full_volume_does_not_fail_the_monitor(small_volume, tmp_path):
    """Users fill their volumes. The monitor's save of the client list then cannot be
    written: that is worth a warning, not a failed monitor that restarts or moves exports
    which serve perfectly well (the other node would find the same full volume)."""
    with knfsd_started(small_volume, tmp_path) as (config, vol, state, params):
        (state / "rmtab").write_text(f"192.0.2.7:{vol}/d:0x00000001\n")  # a client mounted d
        saved = vol / ".ganesha-ha" / "rmtab"
        before = saved.read_bytes() if saved.exists() else None
        fill(vol)
        proc, _ = run_agent("monitor", params | {"CRM_meta_interval": "10000"})
        assert proc.returncode == 0, proc.stderr
        warnings = [l for l in proc.stderr.splitlines() if ": WARNING: " in l]
        assert len(warnings) == 1 and "no space left" in warnings[0], proc.stderr
        assert (saved.read_bytes() if saved.exists() else None) == before
        assert temp_files(vol) == []
        (vol / "filler").unlink()
        proc, _ = run_agent("monitor", params | {"CRM_meta_interval": "10000"})
        assert proc.returncode == 0 and "client-recovery state saved" in proc.stderr, proc.stderr
        assert "192.0.2.7" in saved.read_text()


HANGING_EXPORTFS = """#!/bin/sh
exec sleep 300
"""


@needs_root
def test_exportfs_that_hangs_is_a_timeout_not_a_hung_agent(knfsd_active, tmp_path):
    """A hung exportfs ends within the configured exportfs_timeout (CLI) and within 40 % of
    the action's own timeout (agent: CRM_meta_timeout 3 s here), with one line and a code,
    so Pacemaker hears why instead of killing the agent."""
    config, vol, state, params = knfsd_active
    before, etab = registry_bytes(vol), live_lines(state, vol)
    exe = fake_program(tmp_path / "exportfs", HANGING_EXPORTFS)
    config.write_text(f"[knfsd]\nexportfs = {exe}\nexportfs_timeout = 1\n[node]\nruntime_dir = {tmp_path / 'run'}\n")
    proc, took = run_cli(config, "export", "add", str(vol), "e", "--client", "127.0.0.1")
    assert_cli_failure(proc, 6, "exportfs did not finish within 1 s")
    assert took < 1 + SLACK, took
    # the agent: the settings say 120 s; the action's timeout (3 s) caps one call at 1.2 s
    config.write_text(f"[knfsd]\nexportfs = {exe}\n[node]\nruntime_dir = {tmp_path / 'run'}\n")
    proc, took = run_agent("monitor", params | {"CRM_meta_interval": "10000"})
    assert_agent_failure(proc, 1, "exportfs did not finish within 1.2 s")
    print(f"monitor with a hung exportfs: {took:.2f} s")
    assert took < 3, f"monitor took {took:.1f} s, the action's timeout is 3 s"
    assert registry_bytes(vol) == before and live_lines(state, vol) == etab
