"""Shared fixtures. The whole test session runs in a private mount namespace (entered at
start-up), so tmpfs volumes and bind mounts made by tests never reach the host."""
from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
from hypothesis import HealthCheck, settings

from ganesha_ha import linux

ROOT = Path(__file__).resolve().parent.parent
IS_ROOT = os.geteuid() == 0
_NS_ENTERED = False
_NSSWITCH: str | None = None   # the file bound over /etc/nsswitch.conf (_hosts_from_files_only)

# Property tests assert what they assert whatever the machine's load; how long Hypothesis takes
# to draw an example or run one is not under test (speed targets live in bench/). On a shared
# 2-core machine the default 200 ms deadline and the "generation is slow" health check failed
# tests that pass alone.
# The default run draws the same examples every time (derandomize: seeded from each test), so a
# CI run and a developer's run of one commit agree, and a red run is the code's doing, not the
# draw's: a random draw once failed CI on a property that had passed thousands of local runs.
# Exploration is the `sweep` profile's job: `pytest --hypothesis-profile sweep` draws 5000
# random examples per test (no example database); run it on the property tests you touch.
settings.register_profile("shared-machine", deadline=None, suppress_health_check=[HealthCheck.too_slow],
                          derandomize=True)
settings.register_profile("sweep", deadline=None, suppress_health_check=[HealthCheck.too_slow],
                          max_examples=5000, database=None)
settings.load_profile("shared-machine")
# A profile named on the command line sets every property test's count (_profile_sets_example_counts).
# tests/server's property tests drive the real exportfs, ganesha.nfsd and agent (0.1-1 s an example):
# `--hypothesis-profile sweep-live` draws 1000 of each (CI: 40-300)
settings.register_profile("sweep-live", parent=settings.get_profile("sweep"), max_examples=1000)


def pytest_addoption(parser):
    parser.addoption("--long", action="store_true", help="run the long variants (soak, 1000s of trials)")


def pytest_configure(config):
    global _NS_ENTERED
    if IS_ROOT and not _NS_ENTERED:
        linux.enter_private_mount_namespace()
        _hosts_from_files_only()
        _NS_ENTERED = True


def _hosts_from_files_only() -> None:
    """Host names and addresses looked up in /etc/hosts only, never in DNS, by this session and
    every program it starts (the bind mount is in the session's private mount namespace).

    What the suite resolves is either in /etc/hosts (localhost, the lab nodes' own files) or
    must not resolve (*.invalid, *.example, drawn names); an answer from DNS was never part of
    what it shows. But this machine's resolver loses queries: 2-4 % of the lookups of a name
    that does not exist took 5 s (the resolver's timeout; measured, 11 of 300), and a slow
    answer is an outcome of its own for what is under test: the read-back gives all lookups of
    one call 2 s ('not resolved within 2 s', backends/resolve.py), Ganesha resolves in its
    D-Bus thread at AddExport (the lab's D-Bus timeout is 5 s), sm-notify and statd look the
    addresses up. The sweep met it in tests/server/test_ganesha_property.py; with a resolver that
    answers in 3 s, test_ganesha_grants' accepted spellings failed too ('<unknown>' shown).
    A slow resolver is tested with a fake one (tests/unit/test_grants.py test_resolver_budget)."""
    import tempfile

    global _NSSWITCH
    try:
        text = Path("/etc/nsswitch.conf").read_text()
    except OSError:
        return   # glibc's defaults; nothing to bind over
    if "hosts: files" in text.splitlines():
        return   # an xdist worker: its mount namespace is a copy of the controller's, bound already
    lines = [l for l in text.splitlines() if l.split(":")[0].strip() != "hosts"]
    fd, path = tempfile.mkstemp(prefix="gha-test-nsswitch-")
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(lines + ["hosts: files", ""]))
    os.chmod(path, 0o644)
    # kept until pytest_unconfigure: on this machine (gVisor) a mount over a file bound from a
    # deleted one failed with ENOENT
    _NSSWITCH = path
    linux.bind_mount(path, "/etc/nsswitch.conf")


def pytest_unconfigure(config):
    if _NSSWITCH is not None:
        with contextlib.suppress(OSError):
            os.unlink(_NSSWITCH)


def pytest_collection_modifyitems(config, items):
    if config.getoption("--hypothesis-profile"):
        _profile_sets_example_counts(items)
    if config.getoption("--long"):
        return
    skip = pytest.mark.skip(reason="long variant: run with --long")
    for item in items:
        if "long" in item.keywords:
            item.add_marker(skip)


def _profile_sets_example_counts(items) -> None:
    """With a profile named on the command line (`--hypothesis-profile sweep`), every property
    test draws that profile's max_examples. Hypothesis itself lets a test's own
    `@settings(max_examples=N)` win over any profile, so a sweep left most of the suite's
    property tests (all of those that say their count) at their CI count. The settings are
    Hypothesis' attribute on the wrapped test (hypothesis/core.py reads it at each call)."""
    count = settings.default.max_examples   # the loaded profile's
    for item in items:
        test = getattr(item, "obj", None)
        own = getattr(test, "_hypothesis_internal_use_settings", None)
        if own is not None and getattr(test, "is_hypothesis_test", False):
            test._hypothesis_internal_use_settings = settings(own, max_examples=count)


needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root (mounts, namespaces, daemons)")
needs_ganesha = pytest.mark.skipif(shutil.which("ganesha.nfsd") is None, reason="ganesha.nfsd not installed")


_LOW_PORT = 10000
_next_ports: Iterator[int] | None = None


def _worker_ports() -> Iterator[int]:
    """This pytest-xdist worker's slice of the ports from _LOW_PORT to the kernel's ephemeral
    range, from an offset of its PID onwards, round and round."""
    try:
        ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral = 32768
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    index = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").lstrip("gw") or 0) % workers
    size = (ephemeral - _LOW_PORT) // workers
    first = _LOW_PORT + index * size
    offset = os.getpid() % size
    return itertools.cycle([first + (offset + i) % size for i in range(size)])


def free_port() -> int:
    """A TCP port nothing on this machine is bound to now, for a test's ganesha.nfsd (or one
    where nothing may listen).

    Not the kernel's pick (bind to port 0): that port comes from the ephemeral range and is
    free again once this function returns, until the daemon binds it, and in that window the
    other xdist worker's bind(0) and any outgoing connection draw from the same range (the
    network namespace, and so its ports, is shared by the workers). Each worker takes ports
    from its own slice below that range instead (PYTEST_XDIST_WORKER of
    PYTEST_XDIST_WORKER_COUNT), never the same one twice in a row, skipping those bound now
    (by anyone: a bind without SO_REUSEADDR to the wildcard address fails on any of them)."""
    global _next_ports
    if _next_ports is None:
        _next_ports = _worker_ports()
    for _ in range(1000):
        port = next(_next_ports)
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free TCP port in 1000 tries")


@contextlib.contextmanager
def tmpfs(mp: Path, size: str = "64m", source: str = "gha-test-volume") -> Iterator[Path]:
    """A tmpfs mounted at the new directory `mp` for the body (root only; the test session's
    private mount namespace keeps it from the host), lazily unmounted after."""
    if not IS_ROOT:
        pytest.skip("needs root to mount")
    mp.mkdir()
    linux.mount(source, mp, "tmpfs", 0, f"size={size},mode=0755")
    try:
        yield mp
    finally:
        linux.umount(mp, lazy=True)


@contextlib.contextmanager
def this_agent_in_ocf_root(workdir: Path) -> Iterator[Path]:
    """For the body, this checkout's agent at /usr/lib/ocf/resource.d/ganesha-ha/exports in
    the test session's private mount namespace (for tools that run on this machine, not in a
    sandbox node: pcs, crmsh). The host's /usr/lib/ocf is not written: other checkouts on
    this machine use it at the same time. Yields the agent's path."""
    from ganesha_ha.lab.sandbox.ocf_root import OCF_DIR, PROVIDER, ocf_overlay

    if not IS_ROOT:
        pytest.skip("needs root to mount")
    done: list[str] = []
    try:
        for src, dst in ocf_overlay(workdir):
            linux.bind_mount(src, dst, recursive=True)  # the last carries the providers' binds
            done.append(dst)
        yield OCF_DIR / PROVIDER / "exports"
    finally:
        for dst in reversed(done):
            linux.umount(dst, lazy=True)


@pytest.fixture
def tmpfs_volume(tmp_path: Path):
    """A real mounted file system standing in for the shared volume."""
    with tmpfs(tmp_path / "vol") as mp:
        yield mp


class GaneshaLab:
    """A private bus + ganesha.nfsd and a ganesha-ha config pointing at them."""

    def __init__(self, workdir: Path):
        from ganesha_ha.lab.ganesha_daemon import GaneshaDaemon, PrivateBus

        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.bus = PrivateBus(workdir / "bus")
        self.recovery_root = workdir / "recovery"
        self.daemon = GaneshaDaemon(workdir / "ganesha", self.bus, port=self.port,
                                    recovery_root=self.recovery_root)
        self.config = workdir / "ganesha-ha.conf"
        self.config.write_text(
            "[ganesha]\n"
            f"bus_address = unix:path={self.bus.socket}\n"
            "protocols = 4\n"
            "dbus_timeout = 5\n"
            f"recovery_root = {self.recovery_root}\n"
            f"ganesha_config = {self.daemon.config_path}\n"
            "[node]\n"
            f"runtime_dir = {workdir / 'run'}\n"
        )

    def start(self) -> "GaneshaLab":
        if self.bus.proc is None:
            self.bus.start()
        self.daemon.start()
        return self

    def restart(self, kill: bool = False) -> None:
        if kill:
            self.daemon.kill()
        else:
            self.daemon.stop()
        self.daemon.start()

    def stop(self) -> None:
        self.daemon.stop()
        self.bus.stop()

    def settings(self):
        from ganesha_ha.settings import load_settings

        return load_settings(self.config)

    def cli(self, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        """Run the real console entry point, as an administrator would."""
        proc = subprocess.run([sys.executable, "-m", "ganesha_ha.cli", "--config", str(self.config), *args],
                              capture_output=True, text=True, timeout=60)
        if check and proc.returncode != 0:
            raise AssertionError(f"ganesha-ha {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
        return proc

    def export_mgr(self, method: str, *args):
        """Call one ExportMgr method of this lab's Ganesha on its private bus."""
        import dbus

        conn = dbus.bus.BusConnection(self.bus.address)
        try:
            mgr = dbus.Interface(conn.get_object("org.ganesha.nfsd", "/org/ganesha/nfsd/ExportMgr"),
                                 "org.ganesha.nfsd.exportmgr")
            return getattr(mgr, method)(*args)
        finally:
            conn.close()

    def show_exports(self) -> dict[int, str]:
        """Export_Id -> path of what this Ganesha serves now."""
        return {int(e[0]): str(e[1]) for e in self.export_mgr("ShowExports")[1]}

    def remove_export(self, export_id: int) -> None:
        import dbus

        self.export_mgr("RemoveExport", dbus.UInt16(export_id))

    def nfs_url(self, pseudo_path: str) -> str:
        return f"nfs://127.0.0.1{pseudo_path}?version=4&nfsport={self.port}"


@pytest.fixture
def started_volume(ganesha, tmpfs_volume):
    """A Ganesha volume (Export_Ids 3000-3099) started on the lab's Ganesha, with data/f.txt."""
    (tmpfs_volume / "data").mkdir()
    (tmpfs_volume / "data" / "f.txt").write_text("hello from the volume\n")
    ganesha.cli("volume", "init", str(tmpfs_volume), "--server", "ganesha", "--id-range", "3000-3099", check=True)
    ganesha.cli("volume", "start", str(tmpfs_volume), check=True)
    return tmpfs_volume


@contextlib.contextmanager
def ganesha_volume_session(tmp_path_factory, name: str, id_range: tuple[int, int], *,
                           dbus_timeout: float | None = None):
    """One Ganesha and one started tmpfs volume for a whole module (a property test adds and
    removes an export per example): yields (lab, mount point, Volume). `dbus_timeout` replaces
    the lab's 5 s (Ganesha resolves host names in its D-Bus thread, at AddExport). Every removed
    Export_Id is retired, so `id_range` holds more ids than a sweep's examples (--hypothesis-profile
    sweep: 5000; a range of 1000 ran out after about 2000)."""
    from ganesha_ha.volume import Volume

    if not IS_ROOT or shutil.which("ganesha.nfsd") is None:
        pytest.skip("needs root and ganesha.nfsd")
    work = tmp_path_factory.mktemp(name)
    lab = GaneshaLab(work / "glab").start()
    if dbus_timeout is not None:
        lab.config.write_text(lab.config.read_text().replace("dbus_timeout = 5", f"dbus_timeout = {dbus_timeout:g}"))
    vol = work / "vol"
    vol.mkdir()
    linux.mount(f"gha-{name}", str(vol), "tmpfs", 0, "size=32m")
    try:
        volume = Volume(vol, lab.settings())
        volume.init("ganesha", id_range)
        volume.start()
        yield lab, vol, volume
    finally:
        lab.stop()
        linux.umount(str(vol), lazy=True)


@pytest.fixture
def ganesha(tmp_path: Path):
    if not IS_ROOT or shutil.which("ganesha.nfsd") is None:
        pytest.skip("needs root and ganesha.nfsd")
    lab = GaneshaLab(tmp_path / "glab").start()
    yield lab
    lab.stop()
