"""New OPENs during a failover, per volume: how long a volume's clients could not open new files.

A moved volume's clients reclaim their state in the new node's grace period, and while a
Ganesha is in grace it refuses every new OPEN (CLAIM_NULL: NFS4ERR_GRACE), on *every*
export it serves: grace is server-wide (src/SAL/nfs4_recovery.c). So a take-over also stops
new opens of the volumes that did not move but share the receiving daemon. `NewOpenProbe`
measures that as a client sees it: a client of its own (its own client id, so its opens
and its RECLAIM_COMPLETE are those of a real client with nothing to reclaim) that, from
its own thread in the client's network namespace, does OPEN(create) + WRITE + CLOSE of a
fresh file every `interval` seconds and logs each outcome (labclient.Probe). Its window's
outage is "could not open new files": first failed attempt to the first good one after it.

Used by both labs for every volume, moved or not (issue 17 reuses it for per-volume
daemons: "measure it, do not assume").
"""
from __future__ import annotations

import itertools
import threading
import time
from typing import Any

from .labclient import Probe, ProbeWindow, outcome
from .nfs.client import Nfs4Client
from .nfs.nfs4 import NFS4ERR_NAMES, NFS4ERR_GRACE, REESTABLISH_STATUSES, NfsError
from .nfs.rpc import RpcError
from .nsthread import NetnsLoop

GRACE = NFS4ERR_NAMES[NFS4ERR_GRACE]   # a new OPEN refused while the server is in grace


class NewOpenProbe(NetnsLoop):
    """Fresh files `<directory>/<name>-<n>` opened, written and closed every `interval` s
    through `host`, from `source_addr` in network namespace `netns`, NFSv4 minor version
    `minorversion`. `start()` runs it; `mark()` begins a new window (what one failover
    saw); `evidence(t_up)` sums a window up; `stop()` ends it (NetnsLoop)."""

    what = "new-open probe"

    def __init__(self, netns: str, host: str, directory: str, *, client_name: str,
                 source_addr: str | None = None, minorversion: int = 1, interval: float = 0.2,
                 timeout: float = 1.0) -> None:
        super().__init__(netns, f"gha-newopen-{client_name}")
        self.host = host
        self.directory = directory.rstrip("/")
        self.client_name = client_name
        self.source_addr = source_addr
        self.minorversion = minorversion
        self.interval = interval
        self.timeout = timeout
        self.window = ProbeWindow()
        self.opened = 0
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._nfs: Nfs4Client | None = None

    def mark(self) -> ProbeWindow:
        """Begin a new window: the attempts from now on."""
        with self._lock:
            self.window = ProbeWindow()
            return self.window

    def wait_success_after(self, t: float, timeout: float) -> bool:
        """Until an attempt begun after `t` (time.monotonic()) succeeded, or `timeout` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(p.ok and p.t >= t for p in list(self.window.probes)):
                return True
            time.sleep(0.1)
        return False

    def evidence(self, t_up: float | None = None) -> dict[str, Any]:
        """This window: `outage_s` (first failed new open to the first good one after it;
        0.0 if none failed, None if none succeeded after a failure), `grace_s` (the time its
        new opens got NFS4ERR_GRACE: from the first refused so to the first success after the
        last one, ProbeWindow.span; 0.0 if none was, None if that never ended), with `t_up` (when
        the volume was served again) also `after_up_s`: from then to the first new open
        that succeeded and had begun after it; and the counts and errors."""
        w = ProbeWindow(list(self.window.probes))
        grace = w.span(GRACE)
        out: dict[str, Any] = {"outage_s": None if w.outage() is None else round(w.outage(), 2),
                               "grace_s": None if grace is None else round(grace, 2),
                               "attempts": len(w.probes), "failed": sum(not p.ok for p in w.probes),
                               "errors": w.errors()}
        if t_up is not None:
            good = next((p for p in w.probes if p.ok and p.t >= t_up), None)
            out["after_up_s"] = None if good is None else round(good.t - t_up, 2)
        return out

    # ---- in the thread: NetnsLoop's steps ----------------------------------------------
    def _setup(self) -> None:
        self._nfs = Nfs4Client(self.host, client_name=self.client_name, timeout=self.timeout,
                               source_addr=self.source_addr, minorversion=self.minorversion)

    def _teardown(self) -> None:
        self._nfs.close()

    def _loop(self) -> None:
        c = self._nfs
        need_establish = True
        while not self._stop.is_set():
            t = time.monotonic()
            try:
                if not c.connected:
                    c.connect()
                if need_establish:
                    c.establish()
                    need_establish = False
                self._one(c)
                p = Probe(t, True)
            except NfsError as exc:
                # 4.0: a new server instance does not know the client id; 4.1 re-makes
                # its session inside each call (client.py)
                need_establish = exc.status in REESTABLISH_STATUSES
                p = outcome(t, exc, c)
            except (RpcError, OSError) as exc:
                p = outcome(t, exc, c)
            with self._lock:
                self.window.probes.append(p)
            self._stop.wait(max(0.0, t + self.interval - time.monotonic()))

    def _one(self, c: Nfs4Client) -> None:
        name = f"{self.directory}/{self.client_name}-{next(self._seq)}"
        f = c.open(name, create=True, write=True)
        c.write(f, 0, b"a new file\n")
        c.close_file(f)
        self.opened += 1
