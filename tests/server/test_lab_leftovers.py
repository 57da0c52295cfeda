"""tests/lab_leftovers.py, the check that a lab run left nothing behind, must see what a lab
node left running though its command line names nothing of the run: a per-volume
ganesha.nfsd the agent started inside a node (`--ganesha-mode instance`) names only
/run/ganesha-ha/... on the node's own /run. It does see it, by the node's mount namespace
(binds from the run's work directory), even after the work directory is gone; and not a
process of another run. Processes here are ended by their PID."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from conftest import needs_root
from ganesha_ha import linux
from lab_leftovers import leftovers

INSTANCE = "/run/ganesha-ha/ganesha/instances/0b7e0d4c-5d8e-4c3a-9a55-2f0f2f6a1d11"


def instance_like(workdir: Path, view: Path) -> subprocess.Popen:
    """A process named and invoked as the agent starts a volume's ganesha.nfsd, in a private
    mount namespace where `workdir`/node-a/var-lib-nfs is bound at `view` (what a lab node
    does with its state), sleeping."""
    state = workdir / "node-a" / "var-lib-nfs"
    state.mkdir(parents=True)
    view.mkdir()
    return subprocess.Popen(["ganesha.nfsd", "-I", "-S", "-c", "import time; time.sleep(120)",
                             "-F", "-f", f"{INSTANCE}/ganesha.conf", "-p", f"{INSTANCE}/ganesha.pid"],
                            executable=sys.executable, stdin=subprocess.DEVNULL,
                            preexec_fn=linux.private_binds_preexec([(str(state), str(view))]))


def processes(found: list[str]) -> list[str]:
    return [line for line in found if line.startswith("process ")]


@needs_root
def test_an_instance_left_in_a_nodes_mount_namespace_is_a_leftover_until_it_ends(tmp_path):
    root = tmp_path / "lab"
    run, other = root / "r1", root / "r10"          # r1 is a prefix of r10: not the same run
    mine = instance_like(run, tmp_path / "view-r1")
    theirs = instance_like(other, tmp_path / "view-r10")
    try:
        cmd = " ".join(linux.cmdline(mine.pid))
        assert cmd.startswith("ganesha.nfsd ") and str(run) not in cmd and "gha-r1-" not in cmd
        (line,) = processes(leftovers("r1", root=root))
        assert line.startswith(f"process {mine.pid} (in a mount namespace with mounts from {run}): ganesha.nfsd ")
        assert [ln.split()[1] for ln in processes(leftovers("r10", root=root))] == [str(theirs.pid)]
        # the lab removed its work directory but not the instance: still seen (the bind's
        # source is then "<dir>//deleted")
        shutil.rmtree(run)
        assert [ln.split()[1] for ln in processes(leftovers("r1", root=root))] == [str(mine.pid)]
        mine.kill()
        mine.wait(10)
        assert processes(leftovers("r1", root=root)) == []
    finally:
        for proc in (mine, theirs):
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
