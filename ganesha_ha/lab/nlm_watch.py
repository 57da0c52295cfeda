"""What an NFSv3 client holding an NLM lock proves across a failover, whoever drives it.

`NlmWatch` holds, on one volume reached through its floating IP, two NFSv3 client hosts
(two addresses of the lab's client namespace, lab/nfs/v3client.py):

* the *holder*: mounts an export (MOUNT3), writes a file through the handle it keeps,
  holds an exclusive NLM4 lock on it, and runs an NSM listener (lab/nfs/nsm.py) that
  reclaims its locks (LOCK with reclaim=true) as soon as an SM_NOTIFY names their server;
* the *contender*: a different host that wants the same lock throughout (a non-blocking
  LOCK every `interval` s; it is let go at once should it ever get it).

Around a move (`begin()` before it, `evidence()` once the new node is out of grace):

* notified: an SM_NOTIFY reached the holder **from the floating IP** after the move
  (sm-notify -v <ip>: the take-over's job; nobody else sends it);
* reclaimed: its reclaim was GRANTED (Ganesha grants reclaim=true only in grace:
  nlm4_Lock, nfs_get_grace_status(reclaim));
* the contender's lock was never granted: refused with NLM4_DENIED_GRACE_PERIOD while the
  reclaim window was open, and NLM4_DENIED after it (the reclaimed lock holds);
* data and handle intact: the saved handle still reads what was written, and a write
  through it reads back.

Everything runs in the client's network namespace: the calls in a `NetnsWorker`, the
listener's and the contender's threads started from it (they inherit its namespace).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .nfs.nlm4 import NLM4_DENIED, NLM4_DENIED_GRACE_PERIOD, NLM4_GRANTED, stat_name
from .nfs.nsm import NsmListener, servers_of
from .nfs.v3client import Nfs3Client, NlmClient
from .nsthread import NetnsWorker

DATA = b"written over NFSv3 under an NLM lock\n"


@dataclass
class Attempt:
    """One try of the contender (or one read of the holder's handle): when and what came back."""

    t: float
    result: str            # an NLM4_* name, "read ok", or the error
    stat: int | None = None


@dataclass
class NlmWatch:
    """The holder and the contender of one volume (see the module doc)."""

    netns: str
    server: str                     # the volume's floating IP
    export_path: str                # what MOUNT3 MNT is given (the export's Path)
    holder_addr: str
    contender_addr: str
    file_name: str = "nlm-locked.txt"
    interval: float = 0.25
    attempts: list[Attempt] = field(default_factory=list)
    reads: list[Attempt] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.worker: NetnsWorker | None = None
        self.v3: Nfs3Client | None = None
        self.holder = NlmClient(source_addr=self.holder_addr, timeout=2.0)
        self.contender = NlmClient(source_addr=self.contender_addr, timeout=2.0)
        self.listeners: list[NsmListener] = []
        self.fh = b""
        self.expected = b""
        self._stop = threading.Event()
        self._loop: threading.Thread | None = None
        self._marks = (0, 0, 0.0)

    # ---- before any failover ------------------------------------------------------------
    def start(self) -> dict[str, Any]:
        """Mount, write, lock (GRANTED), the contender refused (NLM4_DENIED), listeners up.
        RuntimeError when any of it does not hold."""
        self.worker = NetnsWorker(self.netns, name=f"gha-nlm-{self.holder_addr}")
        self.v3 = Nfs3Client(self.server, source_addr=self.holder_addr, timeout=2.0)

        def first() -> dict[str, Any]:
            root = self.v3.mount(self.export_path)
            self.fh = self.v3.create(root, self.file_name)
            self.v3.write(self.fh, 0, DATA)
            if self.v3.read(self.fh, 0, 4096) != DATA:
                raise RuntimeError("the NFSv3 client did not read back what it wrote")
            self.expected = DATA
            self.lock = self.holder.make_lock(self.fh, svid=4001)
            self.wanted = self.contender.make_lock(self.fh, svid=4002)
            got = self.holder.lock(self.server, self.lock)
            if got != NLM4_GRANTED:
                raise RuntimeError(f"the NLM lock was not granted: {stat_name(got)}")
            other = self.contender.lock(self.server, self.wanted)
            if other != NLM4_DENIED:
                raise RuntimeError(f"a second host's conflicting lock got {stat_name(other)}, not NLM4_DENIED")
            self.listeners = [NsmListener(self.holder_addr, on_notify=self._reclaim).start(),
                              NsmListener(self.contender_addr).start()]
            return {"holder": self.holder_addr, "contender": self.contender_addr, "server": self.server,
                    "export": self.export_path, "file": self.file_name, "file_handle": self.fh.hex(),
                    "lock": "exclusive, whole file", "contender_before": stat_name(other)}
        return self.worker(first)

    def _reclaim(self, note) -> None:
        self.holder.reclaim_all(servers_of(note))

    # ---- around a move ------------------------------------------------------------------
    def begin(self) -> None:
        """Mark where this failover's notifications and reclaims begin; the contender (and a
        read of the saved handle) every `interval` s from now on."""
        self._marks = (len(self.listeners[0].notifications), len(self.holder.reclaims), time.monotonic())
        self.attempts, self.reads = [], []
        self._stop.clear()
        self.worker(lambda: self._start_loop())

    def _start_loop(self) -> None:
        self._loop = threading.Thread(target=self._contend, name="gha-nlm-contender", daemon=True)
        self._loop.start()

    def _contend(self) -> None:
        while not self._stop.is_set():
            t = time.monotonic()
            try:
                stat = self.contender.lock(self.server, self.wanted)
                self.attempts.append(Attempt(t, stat_name(stat), stat))
                if stat == NLM4_GRANTED:   # the holder's lock is lost: let it go at once
                    self.contender.unlock(self.server, self.wanted)
            except Exception as exc:  # noqa: BLE001 - every failure is an outcome here
                self.attempts.append(Attempt(t, f"{type(exc).__name__}: {exc}"[:80]))
            try:
                self.v3.read(self.fh, 0, 16)
                self.reads.append(Attempt(time.monotonic(), "read ok"))
            except Exception as exc:  # noqa: BLE001
                self.v3.close()
                self.reads.append(Attempt(t, f"{type(exc).__name__}"))
            self._stop.wait(max(0.0, t + self.interval - time.monotonic()))

    def evidence(self, t_up: float, grace_over_at: float | None, *, label: str = "NLM") -> dict[str, Any]:
        """This failover, once the new node left grace at `grace_over_at` (time.monotonic();
        None: it never did): waits for one contender attempt after that, stops the loop,
        then checks the data through the saved handle. `checks` is the verdict."""
        after = grace_over_at if grace_over_at is not None else time.monotonic()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(a.t > after for a in list(self.attempts)):
            time.sleep(0.05)
        self._stop.set()
        if self._loop is not None:
            self._loop.join(10)
        n0, r0, _ = self._marks
        notes = self.listeners[0].notifications[n0:]
        from_ip = [n for n in notes if n.source == self.server]
        reclaims = self.holder.reclaims[r0:]
        granted = [r for r in reclaims if r.granted]
        in_window = [a for a in self.attempts if t_up <= a.t <= after]
        later = [a for a in self.attempts if a.t > after]
        out: dict[str, Any] = {
            "notified": bool(from_ip),
            "notified_by": sorted({f"{n.source} ({n.mon_name})" for n in notes}),
            "notified_after_up_s": round(from_ip[0].t - t_up, 2) if from_ip else None,
            "reclaimed": bool(granted),
            "reclaim": [r.error or stat_name(r.stat) for r in reclaims],
            "reclaim_after_up_s": round(granted[0].t - t_up, 2) if granted else None,
            "contender": _tally(self.attempts),
            "contender_granted": any(a.stat == NLM4_GRANTED for a in self.attempts),
            # answered and refused while the window was open (a transport error right after
            # the IP came up is no answer), and refused by the reclaimed lock after it
            "contender_refused_in_grace": any(a.stat in (NLM4_DENIED_GRACE_PERIOD, NLM4_DENIED)
                                              for a in in_window),
            "contender_refused_after_grace": any(a.stat == NLM4_DENIED for a in later),
            "reads": _tally(self.reads),
        }
        out.update(self.worker(self._data_check, timeout=30))
        out["checks"] = {
            "nlm_notified_from_floating_ip": out["notified"],
            "nlm_lock_reclaimed_in_grace": out["reclaimed"],
            "nlm_conflicting_lock_refused": (not out["contender_granted"] and out["contender_refused_in_grace"]
                                             and out["contender_refused_after_grace"]),
            "nlm_data_and_handle_intact": out["data_intact"],
        }
        return out

    def _data_check(self) -> dict[str, Any]:
        """The saved handle reads what was written; one more line written through it reads back."""
        try:
            before = self.v3.read(self.fh, 0, 1 << 16)
            line = f"after failover {len(self.holder.reclaims)}\n".encode()
            self.v3.write(self.fh, len(self.expected), line)
            back = self.v3.read(self.fh, 0, 1 << 16)
        except Exception as exc:  # noqa: BLE001
            return {"data_intact": False, "data_error": f"{type(exc).__name__}: {exc}"[:200]}
        ok = before == self.expected and back == self.expected + line
        if ok:
            self.expected = back
        return {"data_intact": ok}

    def stop(self) -> None:
        self._stop.set()
        if self.worker is None:
            return
        try:
            self.worker(lambda: [listener.stop() for listener in self.listeners], timeout=15)
        except Exception:  # noqa: BLE001 - teardown goes on
            pass
        if self.v3 is not None:
            self.v3.close()
        self.worker.stop()


def _tally(attempts: list[Attempt]) -> dict[str, int]:
    out: dict[str, int] = {}
    for a in attempts:
        out[a.result] = out.get(a.result, 0) + 1
    return out
