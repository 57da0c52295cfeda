"""The lab's NFS client, living in the client's network namespace.

One thread setns()'s into the client namespace (a network namespace is per thread, so only
this thread's sockets are in it) and owns an `Nfs4Client` for its whole life: the same
client name, verifier and source address across every failover, which is what lets the
new server recognise it. The orchestrator hands it work with `call(fn)`; between calls the
thread keeps the lease alive (RENEW) and, while `probing`, replays the saved file handle
(PUTFH + READ with the anonymous stateid) every `interval` seconds and logs each outcome.
The probe log is the outage measurement: first failed I/O to first successful one.

With a `stream` open, the thread also *writes throughout*: every `interval` it appends the
next fixed-size numbered record with FILE_SYNC, and counts a record as acknowledged only
when the server said so. A failed write is retried with the same bytes at the same offset
(as a real client retries an unacknowledged write), so after every move `lost_records()`
can check that each acknowledged record is on the server, byte for byte.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .nfs.client import Nfs4Client, OpenFile
from .nfs.nfs4 import NFS4ERR_STALE, NfsError
from .nfs.rpc import RpcError
from .nsthread import NetnsLoop

RECORD = 48  # bytes per record of the write stream


def record(i: int, name: str = "gha-lab-client") -> bytes:
    """Record `i` of the write stream: fixed size, so record i lives at offset i * RECORD."""
    return f"record {i:09d} {name}".encode()[:RECORD - 1].ljust(RECORD - 1, b".") + b"\n"


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

    def span(self, error: str) -> float | None:
        """How long attempts failed with `error` (an NFS4ERR_* name): from the first that did
        to the first success after the last that did; 0.0 when none did, None when nothing
        succeeded after the last one (it never ended in this window)."""
        hit = [p for p in self.probes if not p.ok and p.error == error]
        if not hit:
            return 0.0
        ok = next((p for p in self.probes if p.ok and p.t > hit[-1].t), None)
        return None if ok is None else ok.t - hit[0].t

    def outage(self) -> float | None:
        fail, rec = self.first_failure(), self.recovery()
        if fail is None:
            return 0.0
        if rec is None:
            return None
        return rec.t - fail.t


def outcome(t: float, exc: BaseException | None, client: Any = None) -> Probe:
    """The Probe of an attempt begun at `t` that raised `exc` (None: it succeeded). A
    transport failure closes `client`'s connection, so the next attempt reconnects."""
    if exc is None:
        return Probe(t, True)
    if isinstance(exc, NfsError):
        return Probe(t, False, exc.name, exc.status)
    if client is not None:
        client.close()
    if isinstance(exc, RpcError):
        return Probe(t, False, f"RPC: {exc}")
    err = getattr(exc, "errno", None)
    return Probe(t, False, os.strerror(err) if err else (type(exc).__name__ or "socket error"))


class LabClient(NetnsLoop):
    """An `Nfs4Client` (NFSv4 minor version `minorversion`, from `source_addr` if given)
    run by one thread inside network namespace `netns` (`start()`, `stop()`: NetnsLoop)."""

    what = "client thread"

    def __init__(self, netns: str, host: str, port: int = 2049, *,
                 client_name: str = "gha-lab-client", interval: float = 0.1,
                 probe_timeout: float = 0.5, renew_every: float = 1.5,
                 minorversion: int = 1, source_addr: str | None = None) -> None:
        super().__init__(netns, "gha-lab-client")
        self.host = host
        self.port = port
        self.client_name = client_name
        self.minorversion = minorversion
        self.source_addr = source_addr
        self.interval = interval
        self.probe_timeout = probe_timeout
        self.renew_every = renew_every
        self.nfs: Nfs4Client | None = None
        self.probe_fh: bytes | None = None
        self.probing = False
        self.window = ProbeWindow()
        self.renew_errors = 0
        self.keep_lease = True
        self.stream: OpenFile | None = None      # the open the writer appends through
        self.writing = False
        self.acked = 0                           # records 0..acked-1 were acknowledged
        self.writes = ProbeWindow()              # outcome of every write attempt (per window)
        self.all_writes = ProbeWindow()          # ... over the whole run
        self._last_renew = 0.0

    # ---- in the thread: NetnsLoop's steps ----------------------------------------------
    def _setup(self) -> None:
        self.nfs = Nfs4Client(self.host, self.port, client_name=self.client_name, timeout=5.0,
                              minorversion=self.minorversion, source_addr=self.source_addr)

    def _teardown(self) -> None:
        self.nfs.close()

    def _loop(self) -> None:
        next_tick = time.monotonic()
        while not self._stop.is_set():
            busy = self.probing or (self.writing and self.stream is not None)
            wait = max(0.0, next_tick - time.monotonic()) if busy else 0.2
            if self._serve_one(wait) or self._stop.is_set():
                continue
            next_tick = time.monotonic() + self.interval
            if self.probing and self.probe_fh is not None:
                self._probe()
            if self.writing and self.stream is not None:
                self._write_next()
            if not self.probing and self.keep_lease and self.nfs.clientid is not None:
                self._renew()

    # ---- work from the orchestrator ----------------------------------------------------
    def call(self, fn: Callable[[Nfs4Client], Any], timeout: float = 60.0) -> Any:
        """Run fn(nfs_client) in the client thread (inside the namespace); return its result."""
        return self._call(lambda: fn(self.nfs), timeout)

    def start_probing(self, fh: bytes) -> ProbeWindow:
        """Replay `fh` every `interval` s from now on; returns the window being filled."""
        def begin(c: Nfs4Client) -> None:
            self.probe_fh = fh
            self.window = ProbeWindow()
            self.writes = ProbeWindow()
            c.timeout = self.probe_timeout
            c.connect()  # a fresh socket with the short timeout
            self.probing = True
        self.call(begin)
        return self.window

    def stop_probing(self) -> ProbeWindow:
        def end(c: Nfs4Client) -> None:
            self.probing = False
            c.timeout = 5.0          # the open connection too
        self.call(end)
        return self.window

    def lost_records(self, c: Nfs4Client, via: OpenFile | bytes) -> list[int]:
        """(In the client thread.) Acknowledged records that the server does not return
        byte for byte, read through `via`: the stream's reclaimed open, or its bare handle."""
        if not self.acked:
            return []
        data = c.read(via, 0, self.acked * RECORD)
        return [i for i in range(self.acked)
                if data[i * RECORD:(i + 1) * RECORD] != record(i, self.client_name)]

    # ---- in the thread ----------------------------------------------------------------
    def _outcome(self, t: float, exc: BaseException | None) -> Probe:
        return outcome(t, exc, self.nfs)

    def _write_next(self) -> None:
        c = self.nfs
        t = time.monotonic()
        n = self.acked
        try:
            if not c.connected:
                c.connect()
            data = record(n, self.client_name)
            if c.write(self.stream, n * RECORD, data) != len(data):
                raise RpcError("short write")
            self.acked = n + 1
            p = self._outcome(t, None)
        except (NfsError, RpcError, OSError) as exc:
            p = self._outcome(t, exc)
        self.writes.probes.append(p)
        self.all_writes.probes.append(p)

    def _probe(self) -> None:
        c = self.nfs
        t = time.monotonic()
        try:
            if not c.connected:
                c.connect()
            c.read(self.probe_fh, 0, 64)
            p = self._outcome(t, None)
        except (NfsError, RpcError, OSError) as exc:
            p = self._outcome(t, exc)
        self.window.probes.append(p)

    def _renew(self) -> None:
        now = time.monotonic()
        if now - self._last_renew < self.renew_every:
            return
        self._last_renew = now
        c = self.nfs
        try:
            if not c.connected:
                c.connect()
            c.renew()
        except (NfsError, RpcError, OSError):
            self.renew_errors += 1
