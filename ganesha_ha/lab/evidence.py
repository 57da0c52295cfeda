"""What one NFS client proves across a failover, whoever drives the failover.

`ClientWatch` holds one lab client (labclient.py) on one volume: a file it opened and keeps
the handle of, the bytes it expects there, and a write stream it appends to throughout. The
direct lab (direct_lab.py) and the cluster lab (cluster_lab.py) differ only in *how* the
volume moves; around the move both do the same thing, here:

* `begin()` before the move: replay the saved handle every 100 ms (a baseline first);
* `settle(t_up)` after it: wait until the new node answered (or refused the handle), then
  the outage is the time from the client's first failed I/O to its first good one;
* `recover()`: reclaim the opens with CLAIM_PREVIOUS in the new node's grace period (NFSv4.1:
  only if the new node presents the scope that granted them, then RECLAIM_COMPLETE), read
  through the saved handle, verify the data, write more, check no acknowledged record of
  the stream is lost, and that the bytes are on the volume as the new node sees it;
* `fresh_open()` after grace: a brand-new OPEN works (normal service again);
* `checks()`: the verdict every failover must pass.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from .labclient import LabClient, ProbeWindow
from .nfs.client import ScopeMismatch
from .procs import wait_until


def server_identity(c: Any) -> dict[str, str] | None:
    """What an NFSv4.1 client's last EXCHANGE_ID presented (RFC 8881 2.10.5): the server
    owner's major id and the server scope, as text; Ganesha sends the scope with a trailing
    NUL (nfs4_op_exchange_id.c), dropped here. None for NFSv4.0 (no EXCHANGE_ID)."""
    if c.server is None:
        return None
    scope = c.server.server_scope
    scope = scope[:-1] if scope.endswith(b"\0") else scope
    return {"owner": c.server.server_owner.major_id.decode(errors="replace"),
            "scope": scope.decode(errors="replace")}


class ClientWatch:
    """One client on one volume, reached through `client`'s server address."""

    def __init__(self, client: LabClient, *, file: str, stream_file: str, grace_period: int,
                 say: Callable[..., Any]) -> None:
        self.client = client
        self.file = file
        self.stream_file = stream_file
        self.grace_period = grace_period
        self.say = say
        self.open_file = None
        self.expected = b""
        self.window: ProbeWindow | None = None
        self.stale: list = []
        self.handle_ok = False

    # ---- before any failover ------------------------------------------------------------
    def open(self, first_line: bytes) -> dict[str, Any]:
        """Connect, open the file, write and read back `first_line`, start the write stream.
        The opens wait out a grace period the server may still be in (with NLM on a
        Ganesha's start grace runs its whole Grace_Period: nfs4_recovery.c)."""
        lc = self.client
        deadline = time.monotonic() + self.grace_period + 15

        def first_open(c):
            c.connect()
            c.establish()
            f = c.grace_aware(lambda: c.open(self.file, create=True, write=True), deadline=deadline)
            c.write(f, 0, first_line)
            lc.stream = c.grace_aware(lambda: c.open(self.stream_file, create=True, write=True),
                                      deadline=deadline)
            lc.writing = True  # from now on the client appends a record every 100 ms
            return f, c.read(f, 0, 4096), server_identity(c)

        self.open_file, back, server = lc.call(first_open, timeout=self.grace_period + 30)
        if back != first_line:
            raise RuntimeError(f"the client read back {back!r}, not what it wrote")
        self.expected = first_line
        return {"name": lc.client_name, "server": lc.host, "file": self.file,
                "nfs_version": f"4.{lc.minorversion}", "address": lc.source_addr,
                "file_handle": self.open_file.fh.hex(), "write_stream": self.stream_file,
                "server_identity": server}

    # ---- around the move ----------------------------------------------------------------
    def begin(self) -> None:
        """Start replaying the saved handle; a few good probes first, as the baseline."""
        self.window = self.client.start_probing(self.open_file.fh)
        time.sleep(0.3)

    def settle(self, t_up: float, *, label: str = "client") -> dict[str, Any]:
        """Wait until a read that began after `t_up` (the service is up on the new node)
        succeeded, or a STALE came back; stop probing; return the outage figures."""
        window, writes = self.window, self.client.writes
        tick = self.say.ticker(f"  {label}: replaying its saved handle every 100 ms")

        def settled() -> bool:
            tick(f"{len(window.probes)} probes, {sum(not p.ok for p in window.probes)} failed")
            return (any(p.ok and p.t >= t_up for p in window.probes)
                    or any(p.t >= t_up for p in window.stale()))

        wait_until(settled, max(0.0, t_up + self.grace_period + 15 - time.monotonic()), interval=0.1)
        time.sleep(0.25)
        self.client.stop_probing()
        # Outage: the first failed I/O (a read of the handle or a write of the stream,
        # whichever noticed first) to the first successful one after that.
        io = ProbeWindow(sorted(window.probes + writes.probes, key=lambda p: p.t))
        served = any(p.ok and p.t >= t_up for p in window.probes)
        self.stale = window.stale() + writes.stale()
        self.handle_ok = served and not self.stale
        out = {"outage_s": round(io.outage(), 2) if served and io.outage() is not None else None,
               "probes": {"sent": len(window.probes), "failed": sum(not p.ok for p in window.probes),
                          "errors": window.errors()},
               "stale_replies": len(self.stale)}
        self.say(f"  {label}: outage {out['outage_s']} s ({out['probes']['failed']} of "
                 f"{out['probes']['sent']} reads failed: "
                 f"{', '.join(f'{k} x{v}' for k, v in window.errors().items()) or 'none'})")
        return out

    def recover(self, i: int, node: str, t_up: float,
                volume_file: Callable[[], bytes | None]) -> dict[str, Any]:
        """Reclaim the open (CLAIM_PREVIOUS), read through the saved handle, verify, append a
        line, read it back; `volume_file()` reads the file on the volume on the new node."""
        if not self.handle_ok:
            err = (f"saved handle refused: {self.stale[0].error}" if self.stale
                   else "client never got through")
            return {"reclaimed": False, "data_verified": False, "handles_preserved": False,
                    "acked_writes_lost": None, "error": err}
        f = self.open_file
        expected = self.expected
        line = f"failover {i}: written through node {node} after the move\n".encode()
        deadline = time.monotonic() + self.grace_period + 15
        lc = self.client

        def reclaim_complete(c, out: dict[str, Any]) -> None:
            """NFSv4.1: all reclaimed, say so (RFC 8881 18.51): until then the server refuses
            this client's new opens, and its grace can lift early only once every client
            with a record said it."""
            try:
                c.grace_aware(c.reclaim_complete, deadline=deadline)
                out["reclaim_complete"] = True
                out["reclaim_complete_s"] = round(time.monotonic() - t_up, 2)
            except Exception as exc:
                out["reclaim_complete"] = False
                out.setdefault("error", f"RECLAIM_COMPLETE refused: {exc}")

        def stream_recovery(c, out: dict[str, Any]) -> None:
            """Reclaim the write stream's open too; then every acknowledged record must be there."""
            if lc.stream is None:
                return
            try:
                s2 = c.grace_aware(lambda: c.reclaim(lc.stream), deadline=deadline)
                lc.stream = s2
                out["stream_reclaimed"] = True
            except Exception as exc:
                lc.writing = False  # no open to write with any more
                out["stream_reclaimed"] = False
                out.setdefault("error", f"reclaim of the write stream failed: {exc}")
                s2 = None
            lost = c.grace_aware(lambda: lc.lost_records(c, s2 if s2 is not None else lc.stream.fh),
                                 deadline=deadline)
            out["acked_writes_lost"] = len(lost)
            if lost:
                out.setdefault("error", f"{len(lost)} acknowledged writes lost (records {lost[:5]}...)")

        def work(c):
            out: dict[str, Any] = {}
            c.grace_aware(c.establish, deadline=deadline)
            out["server_identity"] = server_identity(c)
            try:
                f2 = c.grace_aware(lambda: c.reclaim(f), deadline=deadline)
                out["reclaimed"] = True
                out["reclaim_s"] = round(time.monotonic() - t_up, 2)
            except Exception as exc:
                out["reclaimed"] = False
                out["error"] = f"reclaim of the open failed: {exc}"
                out["scope_mismatch"] = isinstance(exc, ScopeMismatch)
                f2 = None
            got = c.grace_aware(lambda: c.read(f.fh, 0, 1 << 16), deadline=deadline)
            out["handle_reads"] = True
            stream_recovery(c, out)
            if c.minorversion == 1:
                reclaim_complete(c, out)
            if f2 is None:  # no open to write with: a real client would now lose its state
                out["data_verified"] = False
                return out, None
            before_ok = got == expected
            c.grace_aware(lambda: c.write(f2, len(expected), line), deadline=deadline)
            back = c.grace_aware(lambda: c.read(f2, 0, 1 << 16), deadline=deadline)
            out["data_verified"] = before_ok and back == expected + line
            if not before_ok:
                out["error"] = f"data read after the move differs: {got[:80]!r}"
            elif back != expected + line:
                out["error"] = "the write after the move did not read back"
            return out, f2

        try:
            out, f2 = lc.call(work, timeout=self.grace_period + 40)
        except Exception as exc:
            return {"reclaimed": False, "data_verified": False, "handles_preserved": False,
                    "acked_writes_lost": None, "error": f"client: {exc}"}
        if f2 is not None:
            self.open_file = f2
            if out["data_verified"]:
                self.expected = expected + line
        # And the bytes are on the volume itself, as the new node sees it.
        out["data_on_volume"] = volume_file() == self.expected
        if out.get("data_verified") and not out["data_on_volume"]:
            out["data_verified"] = False
            out["error"] = "the file on the volume does not hold what the client wrote"
        out["handles_preserved"] = self.handle_ok and out.pop("handle_reads", False)
        out.setdefault("acked_writes_lost", None)
        return out

    def fresh_open(self, name: str) -> dict[str, Any]:
        """After grace: a brand-new OPEN of `name` works (normal service)."""
        def fresh(c):
            g = c.grace_aware(lambda: c.open(name, create=True, write=True),
                              deadline=time.monotonic() + 15)
            c.write(g, 0, b"ok\n")
            ok = c.read(g, 0, 16) == b"ok\n"
            c.close_file(g)
            return ok

        try:
            return {"new_open_after_grace": bool(self.client.call(fresh, timeout=30))}
        except Exception as exc:
            return {"new_open_after_grace": False, "new_open_error": str(exc)}

    def write_summary(self) -> dict[str, Any]:
        """The write stream over this failover (the writer went on through the grace wait)."""
        w = self.client.writes
        return {"acked_total": self.client.acked, "attempts": len(w.probes),
                "failed": sum(not p.ok for p in w.probes), "errors": w.errors(),
                "outage_s": None if w.outage() is None else round(w.outage(), 2)}

    # ---- the verdict --------------------------------------------------------------------
    def checks(self, fo: dict[str, Any], *, outage_limit: float) -> dict[str, bool]:
        """What every failover must show, from its evidence `fo`."""
        return {
            "handles_preserved": bool(fo.get("handles_preserved")),
            "data_verified": bool(fo.get("data_verified")),
            "reclaimed": bool(fo.get("reclaimed")),
            "export_ids_equal": bool(fo.get("export_ids_equal")),
            "recovery_records_moved": fo.get("recovery_records_moved", 0) > 0,
            "grace_events_sent": fo.get("grace_events_sent", 0) > 0,
            "outage_within_limit": fo.get("outage_s") is not None and fo["outage_s"] <= outage_limit,
            "new_open_after_grace": bool(fo.get("new_open_after_grace")),
            "no_acknowledged_write_lost": fo.get("acked_writes_lost") == 0
            and bool(fo.get("stream_reclaimed")),
            **({"reclaim_complete": bool(fo.get("reclaim_complete"))}
               if self.client.minorversion == 1 else {}),
        }

    # ---- after the last failover --------------------------------------------------------
    def final(self, stale_total: int) -> tuple[dict[str, Any], str | None]:
        """Every record acknowledged over the whole run reads back byte for byte.
        Returns (totals, a problem or None)."""
        lc = self.client
        total: dict[str, Any] = {"records_acked": lc.acked, "write_attempts": len(lc.all_writes.probes),
                                 "stale_replies": stale_total}
        if lc.stream is None:
            return total, None
        lc.writing = False
        try:
            lost = lc.call(lambda c: c.grace_aware(lambda: lc.lost_records(c, lc.stream),
                                                   deadline=time.monotonic() + 20), timeout=30)
        except Exception as exc:
            total["acked_records_lost"] = None
            return total, f"final read of the write stream failed: {exc}"
        total["acked_records_lost"] = len(lost)
        return total, (f"{len(lost)} acknowledged writes are missing at the end of the run"
                       if lost else None)
