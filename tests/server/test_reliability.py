"""Crash consistency and concurrency of the registry (issue 7, points 1 and 2)."""
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from ganesha_ha.model import Export, KnfsdOptions
from ganesha_ha.registry import Registry

from conftest import needs_root


def state_for(generation_exports):
    return tuple(Export(path=f"d{i}", export_id=100 + i, knfsd=KnfsdOptions(str(i + 1)), pseudo=f"/d{i}",
                        clients=("127.0.0.1(rw)",)) for i in range(generation_exports))


def writer_loop(mountpoint):
    """Child: write registries whose export count follows a known sequence, forever."""
    reg = Registry(mountpoint)
    n = 0
    while True:
        with reg.locked():
            st = reg.load()
            n = (len(st.exports) % 40) + 1
            reg.save(st.__class__(st.volume_uuid, st.server, st.id_range, state_for(n), st.generation))


def run_crash_trials(mountpoint, trials):
    reg = Registry(mountpoint)
    reg.init("knfsd", (100, 199), 1000)
    seen_torn = 0
    for _ in range(trials):
        before = reg.load()
        pid = os.fork()
        if pid == 0:  # child
            try:
                writer_loop(mountpoint)
            finally:
                os._exit(0)
        time.sleep(random.uniform(0, 0.02))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        after = reg.load()  # must parse: never a torn file
        # the state is one the writer wrote in full: its exports are exactly state_for(len)
        if after.exports != state_for(len(after.exports)):
            seen_torn += 1
        assert after.generation >= before.generation
    with reg.locked():  # the next writer cleans what killed writers left behind
        pass
    leftovers = [f for f in os.listdir(reg.state_dir) if ".tmp-" in f]
    return seen_torn, leftovers


@needs_root
def test_sigkill_during_writes_never_tears_the_registry(tmpfs_volume):
    torn, leftovers = run_crash_trials(tmpfs_volume, 200)
    assert torn == 0 and leftovers == []


@needs_root
@pytest.mark.long
def test_sigkill_during_writes_long(tmpfs_volume):
    torn, leftovers = run_crash_trials(tmpfs_volume, 1000)
    assert torn == 0 and leftovers == []


def cli(config, *args):
    return subprocess.Popen([sys.executable, "-m", "ganesha_ha.cli", "--config", str(config), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@needs_root
def test_fifty_concurrent_adds_lose_nothing(tmpfs_volume, tmp_path):
    config = tmp_path / "gha.conf"
    config.write_text(f"[node]\nruntime_dir = {tmp_path / 'run'}\n")
    subprocess.run([sys.executable, "-m", "ganesha_ha.cli", "--config", str(config), "volume", "init",
                    str(tmpfs_volume), "--server", "knfsd", "--id-range", "1000-1999"], check=True)
    for i in range(50):
        (tmpfs_volume / f"d{i}").mkdir()
    procs = [cli(config, "export", "add", str(tmpfs_volume), f"d{i}", "--client", "127.0.0.1") for i in range(50)]
    results = [(p.wait(120), p.stderr.read()) for p in procs]
    assert all(rc == 0 for rc, _ in results), [err for rc, err in results if rc]
    st = Registry(tmpfs_volume).load()
    assert len(st.exports) == 50
    assert len({e.export_id for e in st.exports}) == 50 and len({e.knfsd.fsid for e in st.exports}) == 50
    assert {e.path for e in st.exports} == {f"d{i}" for i in range(50)}


@needs_root
def test_concurrent_add_remove_of_one_directory_stays_consistent(ganesha, tmpfs_volume):
    (tmpfs_volume / "d").mkdir()
    ganesha.cli("volume", "init", str(tmpfs_volume), "--server", "ganesha", "--id-range", "700-799", check=True)
    ganesha.cli("volume", "start", str(tmpfs_volume), check=True)
    procs = []
    for i in range(12):
        action = ("add", str(tmpfs_volume), "d", "--client", "127.0.0.1") if i % 2 == 0 else \
                 ("remove", str(tmpfs_volume), "d")
        procs.append(cli(ganesha.config, "export", *action))
    for p in procs:
        p.wait(120)
        err = p.stderr.read()
        # every loser fails cleanly: already exported / no such export, one line, no traceback
        assert p.returncode in (0, 4, 5), err
        assert "Traceback" not in err
    st = Registry(tmpfs_volume).load()
    from ganesha_ha.volume import Volume
    _, rows = Volume(tmpfs_volume, ganesha.settings()).exports_with_status()
    live = {e.path for e, is_live in rows if is_live}
    assert live == {e.path for e in st.exports}, "registry and live server agree"
    shown = set(ganesha.show_exports()) - {0}
    assert shown == {e.export_id for e in st.exports}
