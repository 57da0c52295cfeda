"""`ganesha-ha lab down [RUN_ID]`: tear down labs left up with --keep (or whose process died),
from the state files every lab keeps under /run/ganesha-ha-lab (base.LabRun.save_state).

Processes are ended by PID and start time (never a recycled PID), loop devices by their
backing image, namespaces by their recorded names (only ``gha-`` ones).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

from ..linux import same_process
from .base import WORK_ROOT, RUN_ROOT
from .loopdev import detach_loops, loop_devices_of
from .netns import netns_exists, remove_netns, undo_netns_dir_mount
from .procs import end_process


def state_files() -> list[Path]:
    try:
        return sorted(RUN_ROOT.glob("*.json"))
    except OSError:
        return []


def down(run_id: str | None = None, say: Callable[[str], None] = print) -> tuple[int, list[str]]:
    """Tear down kept labs (all, or `run_id`) from their state files. Returns (count, left)."""
    files = [p for p in state_files() if run_id is None or p.stem == run_id]
    left: list[str] = []
    for path in files:
        try:
            st = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            left.append(f"{path}: unreadable ({exc})")
            continue
        rid = st.get("run_id", path.stem)
        lab_pid = st.get("lab_pid")
        if lab_pid and lab_pid != os.getpid() and _pid_runs_lab(lab_pid):
            left.append(f"lab {rid}: its lab process {lab_pid} is still running (not kept); skipped")
            continue
        for node in st.get("nodes", []):
            # reverse start order: Ganesha, then its bus, the holder (which pins the mount
            # namespace, and with it the volume's mount) last
            for p, t in reversed(node.get("pids", [])):
                if same_process(p, t):
                    end_process(p, t, timeout=_term_wait(p))
                    say(f"lab {rid}: node {node.get('name')}: stopped pid {p}")
                    if same_process(p, t):
                        left.append(f"process {p}")
        for image in [Path(p) for p in st.get("images", [st.get("image", "")]) if p]:
            for dev in loop_devices_of(image):
                say(f"lab {rid}: detaching {dev}")
            left += detach_loops(image)
        for ns in reversed(st.get("netns", [])):
            if ns.startswith("gha-") and netns_exists(ns):
                remove_netns(ns)
                say(f"lab {rid}: removed network namespace {ns}")
                if netns_exists(ns):
                    left.append(f"netns {ns}")
        workdir = Path(st.get("workdir", ""))
        if any(workdir.is_relative_to(r) and workdir != r for r in (RUN_ROOT, WORK_ROOT)):
            shutil.rmtree(workdir, ignore_errors=True)
        path.unlink(missing_ok=True)
        undo_netns_dir_mount(bool(st.get("netns_dir_was_mount", True)))
        try:
            WORK_ROOT.rmdir()  # only when empty
        except OSError:
            pass
    return len(files), left


def _term_wait(pid: int) -> float:
    """Seconds to wait after SIGTERM before SIGKILL: none for ganesha.nfsd, killed at once as
    the lab's own teardown does (GaneshaDaemon.stop with NLM): once it has seen NLM clients its
    SIGTERM takes ~12 s (measured), and a lab torn down keeps nothing it would save."""
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return 10.0
    return 0.0 if comm == "ganesha.nfsd" else 10.0


def _pid_runs_lab(pid: int) -> bool:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return b"lab" in cmd and b"down" not in cmd
