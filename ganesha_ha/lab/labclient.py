"""The lab's NFS client, living in the client's network namespace.

One thread setns()'s into the client namespace (a network namespace is per thread, so only
this thread's sockets are in it) and owns an `Nfs4Client` for its whole life: the same
client name, verifier and source address across every failover, which is what lets the
new server recognise it. The orchestrator hands it work with `call(fn)`; between calls the
thread keeps the lease alive (RENEW) and, while `probing`, replays the saved file handle
(PUTFH + READ with the anonymous stateid) every `interval` seconds and logs each outcome.
The probe log is the outage measurement: first failed I/O to first successful one.
"""
from __future__ import annotations

import ctypes
import os
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable

from .nfsclient import NFS4ERR_STALE, Nfs4Client, NfsError, RpcError

CLONE_NEWNET = 0x40000000


@dataclass
class Probe:
    t: float                      # time.monotonic() when the probe started
    ok: bool
    error: str = ""               # "" when ok; NFS4ERR_* name, or the socket error
    status: int | None = None     # the NFS4ERR_* code when the server answered with one


@dataclass
class ProbeWindow:
    """The probes of one failover and what they say."""

    probes: list[Probe] = field(default_factory=list)

    def first_failure(self) -> Probe | None:
        return next((p for p in self.probes if not p.ok), None)

    def recovery(self) -> Probe | None:
        """The first successful probe after the first failure."""
        fail = self.first_failure()
        if fail is None:
            return None
        return next((p for p in self.probes if p.ok and p.t > fail.t), None)

    def stale(self) -> list[Probe]:
        return [p for p in self.probes if p.status == NFS4ERR_STALE]

    def errors(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in self.probes:
            if not p.ok:
                out[p.error] = out.get(p.error, 0) + 1
        return out

    def outage(self) -> float | None:
        fail, rec = self.first_failure(), self.recovery()
        if fail is None:
            return 0.0
        if rec is None:
            return None
        return rec.t - fail.t


class LabClient:
    """An `Nfs4Client` run by one thread inside network namespace `netns`."""

    def __init__(self, netns: str, host: str, port: int = 2049, *,
                 client_name: str = "gha-lab-client", interval: float = 0.1,
                 probe_timeout: float = 0.5, renew_every: float = 1.5) -> None:
        self.netns = netns
        self.host = host
        self.port = port
        self.client_name = client_name
        self.interval = interval
        self.probe_timeout = probe_timeout
        self.renew_every = renew_every
        self.nfs: Nfs4Client | None = None
        self.probe_fh: bytes | None = None
        self.probing = False
        self.window = ProbeWindow()
        self.renew_errors = 0
        self.keep_lease = True
        self._q: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="gha-lab-client", daemon=True)
        self._last_renew = 0.0

    # ---- life cycle -------------------------------------------------------------------
    def start(self) -> "LabClient":
        self._thread.start()
        self._ready.wait(10)
        if self._start_error is not None:
            raise RuntimeError(f"client thread could not enter {self.netns}: {self._start_error}")
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _enter_netns(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/run/netns/{self.netns}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns({self.netns}): {os.strerror(err)}")
        finally:
            os.close(fd)

    def _main(self) -> None:
        try:
            self._enter_netns()
            self.nfs = Nfs4Client(self.host, self.port, client_name=self.client_name, timeout=5.0)
        except BaseException as exc:  # reported by start()
            self._start_error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while not self._stop.is_set():
                wait = self.interval if self.probing else 0.2
                try:
                    fn, fut = self._q.get(timeout=wait)
                except queue.Empty:
                    fn = fut = None
                if fn is not None:
                    if fut.set_running_or_notify_cancel():
                        try:
                            fut.set_result(fn(self.nfs))
                        except BaseException as exc:
                            fut.set_exception(exc)
                    continue
                if self.probing and self.probe_fh is not None:
                    self._probe()
                elif self.keep_lease and self.nfs.clientid is not None:
                    self._renew()
        finally:
            self.nfs.close()

    # ---- work from the orchestrator ----------------------------------------------------
    def call(self, fn: Callable[[Nfs4Client], Any], timeout: float = 60.0) -> Any:
        """Run fn(nfs_client) in the client thread (inside the namespace); return its result."""
        fut: Future = Future()
        self._q.put((fn, fut))
        return fut.result(timeout)

    def start_probing(self, fh: bytes) -> ProbeWindow:
        """Replay `fh` every `interval` s from now on; returns the window being filled."""
        def begin(c: Nfs4Client) -> None:
            self.probe_fh = fh
            self.window = ProbeWindow()
            c.timeout = self.probe_timeout
            c.connect()  # a fresh socket with the short timeout
            self.probing = True
        self.call(begin)
        return self.window

    def stop_probing(self) -> ProbeWindow:
        def end(c: Nfs4Client) -> None:
            self.probing = False
            c.timeout = 5.0
            if c._sock is not None:
                c._sock.settimeout(5.0)
        self.call(end)
        return self.window

    # ---- in the thread ----------------------------------------------------------------
    def _probe(self) -> None:
        c = self.nfs
        t = time.monotonic()
        try:
            if c._sock is None:
                c.connect()
            c.read(self.probe_fh, 0, 64)
            self.window.probes.append(Probe(t, True))
        except NfsError as exc:
            self.window.probes.append(Probe(t, False, exc.name, exc.status))
        except RpcError as exc:
            c.close()
            self.window.probes.append(Probe(t, False, f"RPC: {exc}"))
        except OSError as exc:
            c.close()
            name = type(exc).__name__ if not exc.errno else os.strerror(exc.errno)
            self.window.probes.append(Probe(t, False, name or "socket error"))
        left = self.interval - (time.monotonic() - t)
        if left > 0:
            self._stop.wait(left)

    def _renew(self) -> None:
        now = time.monotonic()
        if now - self._last_renew < self.renew_every:
            return
        self._last_renew = now
        c = self.nfs
        try:
            if c._sock is None:
                c.connect()
            c.renew()
        except (NfsError, RpcError, OSError):
            self.renew_errors += 1
