"""What a lab run left on this machine (namespaces, loop devices, processes, mounts, files):
the direct and the cluster lab tests both assert it is nothing."""
from __future__ import annotations

import os
from pathlib import Path

from ganesha_ha import linux

RUN_ROOT = Path("/run/ganesha-ha-lab")          # state files
WORK_ROOT = Path("/var/tmp/ganesha-ha-lab")       # work directories


def leftovers(run_id: str, root: Path = WORK_ROOT) -> list[str]:
    """Everything of run `run_id` (work directory under `root`) still on this machine:
    namespaces, loop devices, processes, mounts, the work directory and the state file.

    A process is the run's when its command line names the work directory or the run's
    network namespaces (the lab's own daemons), or when it lives in a mount namespace, not
    ours, that has a mount from the work directory: a lab node's, whose state is bound from
    there. That finds what the nodes' services started inside them, e.g. the per-volume
    ganesha.nfsd the agent starts with `--ganesha-mode instance`, whose command line names
    only paths inside the node (/run/ganesha-ha/ganesha/instances/<uuid>/ on the node's own
    /run, ganesha_instance.py). Processes are listed by PID; nothing is signalled."""
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
    in_nodes = node_processes(workdir)
    for pid in linux.all_pids():
        cmd = " ".join(linux.cmdline(pid))
        if str(workdir) in cmd or f"gha-{run_id}-" in cmd:
            out.append(f"process {pid}: {cmd[:120]}")
        elif pid in in_nodes:
            out.append(f"process {pid} (in a mount namespace with mounts from {workdir}): {cmd[:120]}")
    out += [f"mount {m}" for m in linux.mount_points() if str(workdir) in m]
    if workdir.exists():
        out.append(f"directory {workdir}")
    if (RUN_ROOT / f"{run_id}.json").exists():
        out.append(f"state file {run_id}.json")
    return out


def node_processes(workdir: Path) -> set[int]:
    """PIDs of the processes in a mount namespace other than ours that has a mount of a
    directory at or under `workdir` (a bind: its root field names the directory, mount_table),
    whether or not the directory still exists."""
    dev, inner = mount_source(os.path.abspath(workdir))
    ours = _mount_ns("self")
    verdict: dict[str, bool] = {}
    found = set()
    for pid in linux.all_pids():
        ns = _mount_ns(pid)
        if ns is None or ns == ours:
            continue
        if ns not in verdict:
            verdict[ns] = any(d == dev and (r == inner or r.startswith(inner + "/"))
                              for d, r, _ in linux.mount_table(pid))
        if verdict[ns]:
            found.add(pid)
    return found


def mount_source(path: str) -> tuple[str, str]:
    """How a bind mount of `path` names its source in mountinfo: (the device of our mount that
    holds `path`, `path` inside that file system). The last of the longest mount points wins
    (a later mount over the same point hides the earlier one)."""
    holders = [m for m in linux.mount_table() if path == m[2] or path.startswith(m[2].rstrip("/") + "/")]
    dev, root, point = max(reversed(holders), key=lambda m: len(m[2]))
    return dev, os.path.normpath(os.path.join(root, os.path.relpath(path, point)))


def _mount_ns(pid: int | str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None
