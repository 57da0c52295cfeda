"""The init of a sandbox cluster node, run inside the node's own mount, UTS and network
namespaces (cluster.py starts it under ``unshare``): private mounts, a fresh /run and
/dev/shm, the node's directories bound over the real paths, then corosync and pacemakerd,
supervised until they end."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from ... import linux
from ..netns import link_up
from ..procs import wait_until

from . import clean_env, ha_ids

def _log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} init[{os.getpid()}]: {msg}", flush=True)


def node_init_main(cfg_path: str) -> None:
    """Entry point of a node's init, already inside its own mount/UTS/network namespaces."""
    cfg = json.loads(Path(cfg_path).read_text())
    linux.set_child_subreaper()
    socket.sethostname(cfg["name"])
    linux.make_mounts_private()
    if cfg["lo_up"]:
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            link_up(ipr, "lo")
    # Copies of the host's netns mounts would pin other namespaces alive: drop them here.
    if linux.is_mountpoint("/run/netns"):
        linux.umount("/run/netns", lazy=True)
    uid, gid = ha_ids()
    linux.mount("tmpfs", "/run", "tmpfs", 0, "mode=0755")
    for d, mode, owner in (("/run/crm", 0o750, (uid, gid)), ("/run/resource-agents", 0o755, None),
                           ("/run/lock", 0o1777, None), ("/run/pacemaker", 0o770, (uid, gid))):
        os.mkdir(d)
        os.chmod(d, mode)
        if owner:
            os.chown(d, *owner)
    linux.mount("tmpfs", "/dev/shm", "tmpfs", 0, "mode=1777")
    for src, dst in cfg["binds"]:
        if not os.path.exists(dst):
            if dst.startswith(("/run/", "/dev/shm/")):
                if os.path.isdir(src):
                    os.makedirs(dst)
                else:
                    os.makedirs(os.path.dirname(dst), exist_ok=True)
                    open(dst, "a").close()
            else:
                raise FileNotFoundError(f"bind target {dst} does not exist")
        linux.bind_mount(src, dst, recursive=True)

    env = clean_env()
    with open(Path(cfg_path).parent / "corosync.out", "ab") as out:
        coro = subprocess.Popen(["corosync", "-f"], env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT)
    _log(f"corosync pid {coro.pid}")

    def coro_ready() -> bool:
        if coro.poll() is not None:
            return True
        return subprocess.run(["corosync-cmapctl", "-g", "runtime.votequorum.this_node_id"],
                              env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode == 0

    wait_until(coro_ready, 30, 0.05)
    if coro.poll() is not None:
        _log(f"corosync exited with {coro.returncode}")
        sys.exit(1)
    pcmk_env = {**env, "PCMK_logfacility": "none", **cfg["env"]}
    with open(Path(cfg_path).parent / "pacemakerd.out", "ab") as out:
        pcmk = subprocess.Popen(["pacemakerd"], env=pcmk_env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT)
    _log(f"pacemakerd pid {pcmk.pid}")
    status = Path(cfg["status"])
    tmp = status.with_suffix(".tmp")
    tmp.write_text(json.dumps({"init": os.getpid(), "corosync": coro.pid, "pacemakerd": pcmk.pid}))
    tmp.rename(status)
    _supervise(coro.pid, pcmk.pid, cfg.get("parent"))


def _supervise(coro: int, pcmk: int, parent: int | None) -> None:
    """Reap children; on SIGTERM stop pacemakerd; after pacemakerd, stop corosync; exit.

    If `parent` (the process that started the cluster) goes away, as when a test runner is
    killed, the node shuts itself down the same way; 30 s after a stop was requested,
    whatever still runs is killed.
    """
    term: list[float] = []
    signal.signal(signal.SIGTERM, lambda *_: term.append(time.monotonic()))
    signal.signal(signal.SIGINT, lambda *_: term.append(time.monotonic()))
    alive = {coro: "corosync", pcmk: "pacemakerd"}
    sent: dict[int, float] = {}

    def send(pid: int, sig: int) -> None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    while alive:
        while True:
            try:
                pid, st = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                pid = 0
            if pid == 0:
                break
            if pid in alive:
                _log(f"{alive.pop(pid)} exited with status {st:#x}")
        now = time.monotonic()
        if parent is not None and os.getppid() != parent and not term:
            _log("parent went away: stopping")
            term.append(now)
        if term and now - term[0] > 30:
            for pid in alive:
                send(pid, signal.SIGKILL)
        if pcmk in alive:
            if (term or coro not in alive) and pcmk not in sent:
                send(pcmk, signal.SIGTERM)
                sent[pcmk] = now
            elif pcmk in sent and coro not in alive and now - sent[pcmk] > 15:
                send(pcmk, signal.SIGKILL)
        elif coro in alive:
            if coro not in sent:
                send(coro, signal.SIGTERM)
                sent[coro] = now
            elif now - sent[coro] > 15:
                send(coro, signal.SIGKILL)
        time.sleep(0.1)
    # Leftovers (daemonized agents' processes reparented to us): TERM, then KILL.
    for sig in (signal.SIGTERM, signal.SIGKILL):
        left = linux.descendants(os.getpid())
        for pid in left:
            send(pid, sig)
        if wait_until(_reap_all, 3, 0.05):
            break
    _log("node stopped")


def _reap_all() -> bool:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return True
        if pid == 0:
            return False


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--node-init":
        node_init_main(sys.argv[2])
    else:
        sys.exit("usage: python -m ganesha_ha.lab.sandbox.init --node-init CONFIG.json")
