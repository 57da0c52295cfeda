"""What a lab run left on this machine (namespaces, loop devices, processes, mounts, files):
the direct and the cluster lab tests both assert it is nothing."""
from __future__ import annotations

import os
from pathlib import Path

from ganesha_ha.linux import mount_points

RUN_ROOT = Path("/run/ganesha-ha-lab")          # state files
WORK_ROOT = Path("/var/tmp/ganesha-ha-lab")       # work directories


def leftovers(run_id: str, root: Path = WORK_ROOT) -> list[str]:
    """Everything of run `run_id` (work directory under `root`) still on this machine:
    namespaces, loop devices, processes (daemons' command lines name the work directory or
    its namespaces), mounts, the work directory and the state file."""
    out = []
    netns = Path("/run/netns")
    if netns.is_dir():
        out += [f"netns {n}" for n in os.listdir(netns) if n.startswith(f"gha-{run_id}-")]
    workdir = root / run_id
    for bf in Path("/sys/block").glob("loop*/loop/backing_file"):
        try:
            if bf.read_text().strip().startswith(str(workdir)):
                out.append(f"loop device {bf.parent.parent.name}")
        except OSError:
            pass
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            cmd = (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(workdir) in cmd or f"gha-{run_id}-" in cmd:
            out.append(f"process {pid_dir.name}: {cmd[:120]}")
    out += [f"mount {m}" for m in mount_points() if str(workdir) in m]
    if workdir.exists():
        out.append(f"directory {workdir}")
    if (RUN_ROOT / f"{run_id}.json").exists():
        out.append(f"state file {run_id}.json")
    return out
