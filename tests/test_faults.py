"""Faults the first suites did not cover (issue 7, point 3): a D-Bus call that hangs, exportfs
missing or failing, the disk full while the registry is written.

Each fault is checked through the CLI (exit code, one line on stderr) and, where the agent
meets it, through the resource agent as Pacemaker runs it (ra/exports with a clean
environment: OCF code, one ERR line, elapsed time), and always: the registry is unchanged.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import ROOT, needs_root

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
    """The agent's answer to Pacemaker: the code, one ERR line saying why, an exit reason."""
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    errors = [line for line in proc.stderr.splitlines() if ": ERR: " in line]
    assert len(errors) == 1 and fragment in errors[0], proc.stderr
    assert f"ocf-exit-reason:" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def registry_bytes(volume: Path) -> bytes:
    return (volume / ".ganesha-ha" / "registry.json").read_bytes()


# ---- a D-Bus call that hangs ----------------------------------------------------------------

@contextmanager
def stopped(pid: int):
    """SIGSTOP a process for the body, SIGCONT it whatever happens."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


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


@pytest.fixture
def fake_ganesha(tmp_path):
    """A private bus with a fake Ganesha that never answers AddExport (tests/fake_ganesha.py)."""
    from ganesha_ha.lab.ganesha_daemon import PrivateBus

    bus = PrivateBus(tmp_path / "fbus").start()
    proc = subprocess.Popen([sys.executable, str(Path(__file__).parent / "fake_ganesha.py"), bus.address,
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
    assert_cli_failure(proc, 6, "did not answer AddExport within 1 s")
    assert "rolled back" in proc.stderr
    # the best-effort withdraw after the failure must not add its own wait without bound
    assert took < 2 * DBUS_TIMEOUT + SLACK, f"export add took {took:.1f} s"
    assert registry_exports(tmpfs_volume) == before == []
    assert [f for f in os.listdir(tmpfs_volume / ".ganesha-ha") if ".tmp-" in f] == []
