"""The live changes of the NFS-Ganesha backend: AddExport/UpdateExport (several new exports
per AddExport: ganesha_batch.py), each read back and judged, and RemoveExport. Ganesha's
replies and D-Bus errors are read into one-line messages by ganesha_replies.py.

Apart from ganesha.py (the connection, the read-back of what is live, drift, the node
checks, grace) so that each stays small enough to read whole; the facts both rely on are
in ganesha.py's docstring. `GaneshaBackend` inherits `LiveChanges`.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import (ApplyError, GaneshaHAError, IdCollisionError, PartlyAppliedError, ServerUnavailableError,
                      ValidationError)
from ..fsutil import require_export_directory, write_runtime
from ..model import Export
from ..plan import pseudo_depth
from .ganesha_batch import BATCH_MAX, EVERY_EXPORT, PendingBatch, added_count, batchable, complaints, render_batch
from .ganesha_bus import EXPORT_MGR_IFACE, EXPORT_MGR_PATH, GaneshaBus, Sent, import_dbus
from .ganesha_conf import RenderOptions, check_renderable
from .ganesha_replies import explain, one_line, reply_errors, scrub, serves_nobody_reason, unresolved_error
from .grants import LiveExport, diff_export, serves_nobody
from .resolve import Resolver

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from typing import Any

    from ..context import VolumeContext


class LiveChanges:
    """Adding, updating and removing exports in a live Ganesha, for `GaneshaBackend`
    (ganesha.py), which provides the attributes and the methods declared here."""

    bus: GaneshaBus
    settings: Any
    render_opts: RenderOptions
    resolve: Resolver
    _view: dict[int, str] | None
    _seen: dict[int, LiveExport | None]
    _actions: int

    if TYPE_CHECKING:
        def show_exports(self, fresh: bool = False) -> dict[int, str]: ...
        def display(self, export_id: int) -> LiveExport | None: ...
        def _live(self, ids: Sequence[int] | set[int], shown: dict[int, str] | None = None
                  ) -> dict[int, LiveExport]: ...
        def _held(self, ctx: VolumeContext, exports: Sequence[Export]) -> dict[int, bool]: ...
        def _forget(self) -> None: ...
        def _new_call(self) -> None: ...
        def _export_call(self, method: str, export_id: int, path: str | None, *args: Any,
                         timeout: float | None = None) -> Any: ...
        def _unresolved_warnings(self, exp: Export) -> list[str]: ...
        @staticmethod
        def _abspath(ctx: VolumeContext, exp: Export) -> str: ...
        def _conf_path(self, ctx: VolumeContext, exp: Export) -> Path: ...
        def _volume_dir(self, ctx: VolumeContext) -> Path: ...
        def _write_block(self, ctx: VolumeContext, exp: Export) -> Path: ...
        @staticmethod
        def _parse_display(export_id: int, reply: Any, dbus: Any) -> LiveExport | None: ...

    def apply(self, ctx: VolumeContext, exports: Sequence[Export]) -> list[str]:
        """Add each export, or update it in place when its id is already live for its path,
        then read it back (DisplayExport) and compare. A reply with "Errors found" or a
        read-back that differs from the registry is an ApplyError naming the export, the field
        and both values; an export this call added is then removed again, and the EXPORT file
        rendered for a failed change is deleted. Returns warnings (unresolved host names).

        New exports go to Ganesha several in one AddExport (ganesha_batch.py: up to BATCH_MAX,
        of one pseudo depth, so that none is mounted below another of its batch), each still
        judged on its own. Every export is carried out even when one fails; then the one
        failure is raised as it is when this call had one export, else PartlyAppliedError
        lists them all. IdCollisionError (an id of ours served for another path) stops it."""
        dbus = import_dbus()

        self._new_call()
        shown = self.show_exports()
        live = self._live([e.export_id for e in exports], shown)
        warnings: list[str] = []
        failures: list[tuple[Export, GaneshaHAError]] = []
        adds: list[Export] = []

        def add_pending() -> None:
            if adds:
                said, failed = self._add_together(ctx, adds, dbus)
                warnings.extend(said)
                failures.extend(failed)
            adds.clear()

        for exp in exports:
            path = self._abspath(ctx, exp)
            current = live.get(exp.export_id)
            if current is not None and current.path != path:
                raise IdCollisionError(f"Export_Id {exp.export_id} is already served by this node's "
                                       f"Ganesha for {current.path}")
            try:
                if not exp.remote:
                    require_export_directory(path, "Ganesha")
                if current is None:
                    self._check_proxy_back_end(exp)
            except ApplyError as exc:
                failures.append((exp, exc))
                continue
            together = current is None and batchable(exp)
            if adds and not (together and pseudo_depth(exp.pseudo) == pseudo_depth(adds[0].pseudo)):
                add_pending()
            if together:
                adds.append(exp)
                continue
            try:
                warnings += self._apply_alone(ctx, exp, "UpdateExport" if current is not None else "AddExport",
                                              path, dbus)
            except (ApplyError, ValidationError) as exc:
                failures.append((exp, exc))
        add_pending()
        if failures:
            if len(exports) == 1:
                raise failures[0][1]
            raise PartlyAppliedError(failures, warnings)
        return warnings

    def _check_proxy_back_end(self, exp: Export) -> None:
        """ApplyError when `exp` is a PROXY_V4 export whose back-end's NFS port does not take a
        TCP connection within min(2 s, a quarter of the D-Bus timeout): Ganesha's AddExport of it
        would never return (module docstring). NFS_Port 0 (the back-end's rpcbind decides) is
        not tried."""
        base = exp.ganesha.fsal.base
        if base.problem or base.name != "PROXY_V4":
            return
        import socket

        host, port = base.effective("Srv_Addr") or "", int(base.effective("NFS_Port") or 2049)
        if not port:
            return
        try:
            socket.create_connection((host, port), timeout=min(2.0, self.bus.timeout / 4)).close()
        except OSError as exc:
            raise ApplyError(f"PROXY_V4 back-end {host}:{port} does not answer ({exc.strerror or exc}): "
                             "Ganesha's AddExport would wait for it forever and stop answering D-Bus "
                             "for every export of this node") from None

    def _apply_alone(self, ctx: VolumeContext, exp: Export, method: str, path: str, dbus: Any) -> list[str]:
        """Add/UpdateExport of one export in a file of its own (export-<id>.conf, kept for the
        administrator's eyes unless it holds a secret), then its read-back."""
        conf = self._write_block(ctx, exp)
        try:
            return self._apply_one(exp, conf, method, path, dbus)
        except BaseException:
            _unlink(conf)
            raise

    def _add_together(self, ctx: VolumeContext, exps: list[Export], dbus: Any
                      ) -> tuple[list[str], list[tuple[Export, GaneshaHAError]]]:
        """New exports of one pseudo depth, up to BATCH_MAX in one AddExport, each judged on
        its own: Ganesha's complaints about its block, then its read-back. Returns the warnings
        and the (export, error) of each export that is not live as asked (an export this call
        added and that is wrong is removed again).

        Pipelined, so that Ganesha's one D-Bus thread is never left waiting for this process:
        two AddExports are on the way at a time, each batch's file written while Ganesha loads
        the one before. When a batch's AddExport answers that it loaded the batch in full
        without a complaint, the read-back of its exports (one DisplayExport each) is sent, then
        the AddExport after next; Ganesha answers the calls of a connection one at a time in
        the order sent, so each read-back follows its own AddExport (and the next one), and it
        is judged while Ganesha loads a later batch. A batch with any other answer is judged
        on its own (`_judge_batch`), its calls after the AddExport already on the way. The
        batches of one pseudo depth are siblings (none is mounted below another), so the order
        in which they go live does not matter. At most BATCH_MAX + 2 calls are on the way."""
        warnings: list[str] = []
        failures: list[tuple[Export, GaneshaHAError]] = []
        chunks = [exps[i:i + BATCH_MAX] for i in range(0, len(exps), BATCH_MAX)]
        flying: list[tuple[PendingBatch, Sent | None]] = []   # in the order sent, at most two

        def launch(k: int) -> None:   # batch k: prepared, its AddExport sent
            if k < len(chunks):
                batch = self._prepare(ctx, chunks[k], failures)
                flying.append((batch, self._send_batch(batch)))

        try:
            launch(0)
            launch(1)
            for k in range(len(chunks)):
                batch, adding = flying.pop(0)
                if adding is None:   # one export ready or none: alone, in its own file
                    launch(k + 2)
                    said, failed = self._each_alone(ctx, batch.ready, dbus)
                else:
                    message, error = self._batch_reply(batch, adding, dbus)
                    if error is None and added_count(message) == len(batch.ready) and not complaints(message):
                        readback = self._send_readback(ctx, batch, dbus)
                        launch(k + 2)
                        said, failed = self._judge_readback(ctx, batch, readback, message, dbus)
                    else:
                        launch(k + 2)
                        said, failed = self._judge_batch(ctx, batch, message, error, dbus)
                warnings += said
                failures += failed
        except BaseException:
            self._forget()
            for left, _ in flying:   # a vehicle only, whatever Ganesha did with it
                if left.conf is not None:
                    _unlink(left.conf)
            raise
        return warnings, failures

    def _prepare(self, ctx: VolumeContext, exps: list[Export],
                 failures: list[tuple[Export, GaneshaHAError]]) -> PendingBatch:
        """The exports of `exps` that render (the others go to `failures`) and, for two or more,
        their AddExport file, written (0600, in the volume's 0700 directory)."""
        ready: list[Export] = []
        for exp in exps:
            try:
                check_renderable(exp, ctx.mountpoint)
            except ValidationError as exc:
                failures.append((exp, exc))
            else:
                ready.append(exp)
        if len(ready) <= 1:
            return PendingBatch(ready)
        text = render_batch(ready, ctx.mountpoint, self.render_opts)
        conf = self._volume_dir(ctx) / f"exports-{ready[0].export_id}-{os.getpid()}.conf"
        write_runtime(conf, text.text.encode(), 0o600)
        return PendingBatch(ready, text, conf, [secret for exp in ready for secret in exp.ganesha.fsal.secrets()])

    def _send_batch(self, batch: PendingBatch | None) -> Sent | None:
        """The AddExport of a batch's file, sent (None: no file to send)."""
        if batch is None or batch.conf is None:
            return None
        try:
            return self.bus.send(EXPORT_MGR_PATH, EXPORT_MGR_IFACE, "AddExport", [(str(batch.conf), EVERY_EXPORT)])
        except BaseException:
            _unlink(batch.conf)
            raise

    def _batch_reply(self, batch: PendingBatch, sent: Sent, dbus: Any) -> tuple[str, Any]:
        """Ganesha's answer to a batch's AddExport: (its message, the DBusException or None).
        The file is deleted: a vehicle only (Ganesha has read it; a secret stays in the registry)."""
        for exp in batch.ready:
            self._seen.pop(exp.export_id, None)
        try:
            answer = sent.wait()[0]
        finally:
            _unlink(batch.conf)
        if isinstance(answer, dbus.DBusException):
            return answer.get_dbus_message() or "", answer
        return str(answer), None

    def _send_readback(self, ctx: VolumeContext, batch: PendingBatch, dbus: Any) -> Sent:
        """The DisplayExport of each export of a batch Ganesha loaded in full, sent."""
        if self._view is not None:
            self._view.update((exp.export_id, self._abspath(ctx, exp)) for exp in batch.ready)
        return self.bus.send(EXPORT_MGR_PATH, EXPORT_MGR_IFACE, "DisplayExport",
                             [(dbus.UInt16(exp.export_id),) for exp in batch.ready])

    def _judge_readback(self, ctx: VolumeContext, batch: PendingBatch, readback: Sent, message: str, dbus: Any
                        ) -> tuple[list[str], list[tuple[Export, GaneshaHAError]]]:
        got = {exp.export_id: self._parse_display(exp.export_id, reply, dbus)
               for exp, reply in zip(batch.ready, readback.wait())}
        if self._actions:
            self._seen.update(got)
        return self._judge_added(ctx, batch.ready, got, message, batch.secrets)

    def _judge_added(self, ctx: VolumeContext, exps: list[Export], got: dict[int, LiveExport | None],
                     message: str, secrets: list[str]) -> tuple[list[str], list[tuple[Export, GaneshaHAError]]]:
        """The verdict on each export an AddExport added, from its read-back in `got`: its
        warnings, or its failure (and it is taken back)."""
        warnings: list[str] = []
        failures: list[tuple[Export, GaneshaHAError]] = []
        said = one_line(message)
        for exp in exps:
            problem = self._verdict(exp, "AddExport", self._abspath(ctx, exp), got.get(exp.export_id), said, secrets)
            if problem is None:
                warnings += self._unresolved_warnings(exp)
            else:
                failures.append((exp, problem))
                self._take_back(exp, failures)
        return warnings, failures

    def _judge_batch(self, ctx: VolumeContext, batch: PendingBatch, message: str, error: Any, dbus: Any
                     ) -> tuple[list[str], list[tuple[Export, GaneshaHAError]]]:
        """A batch whose AddExport failed, or added fewer than all, or complained (the AddExport
        of the batch after it may be on the way: these calls are answered after it, and that
        batch's exports are none of these). Of what Ganesha did not add (a block that fails to load ends its loop), the
        block it complained about is added alone, for its own words, and the rest together
        again; a complaint no block owns makes every export of the batch go alone, after those
        that went live are taken back."""
        ready = batch.ready
        failures: list[tuple[Export, GaneshaHAError]] = []
        per, unowned = batch.text.attribute(complaints(message), str(batch.conf))
        if error is None and added_count(message) == len(ready) and not unowned:
            added = ready
            if self._view is not None:
                self._view.update((exp.export_id, self._abspath(ctx, exp)) for exp in ready)
        else:
            now = self.show_exports(fresh=True)
            present = [exp for exp in ready if exp.export_id in now]
            held = self._held(ctx, present)
            added = [exp for exp in present if held[exp.export_id]]
            for exp in present:   # live for another path: not ours (its id was taken meanwhile)
                if not held[exp.export_id]:
                    failures.append((exp, ApplyError(f"Ganesha AddExport of Export_Id {exp.export_id} "
                                                     f"({exp.pseudo}): the id is already active for another path")))
        if unowned:   # whose? nobody can say: each goes again on its own
            for exp in reversed(added):
                self._take_back(exp, failures)
            taken = {exp.export_id for exp, _ in failures}
            said, alone_failures = self._each_alone(ctx, [e for e in ready if e.export_id not in taken], dbus)
            return said, failures + alone_failures
        judged = [exp for exp in added
                  if not self._refused(exp, per.get(exp.export_id, []), batch.secrets, failures)]
        ids = [exp.export_id for exp in judged]
        got = self._live(ids, dict.fromkeys(ids, ""))   # live: added by this call, or shown just now
        warnings, judged_failures = self._judge_added(ctx, judged, dict(got), message, batch.secrets)
        failures += judged_failures
        # not added: the block Ganesha blamed goes alone (for its own words), the rest together again
        done = {exp.export_id for exp in added} | {exp.export_id for exp, _ in failures}
        blamed = [e for e in ready if e.export_id not in done and per.get(e.export_id)]
        rest = [e for e in ready if e.export_id not in done and not per.get(e.export_id)]
        said, alone_failures = self._each_alone(ctx, blamed if added or blamed else rest, dbus)
        if rest and (added or blamed):
            more, more_failures = self._add_together(ctx, rest, dbus)
            said, alone_failures = said + more, alone_failures + more_failures
        return warnings + said, failures + alone_failures

    def _each_alone(self, ctx: VolumeContext, exps: list[Export], dbus: Any
                    ) -> tuple[list[str], list[tuple[Export, GaneshaHAError]]]:
        warnings: list[str] = []
        failures: list[tuple[Export, GaneshaHAError]] = []
        for exp in exps:
            try:
                warnings += self._apply_alone(ctx, exp, "AddExport", self._abspath(ctx, exp), dbus)
            except (ApplyError, ValidationError) as exc:
                failures.append((exp, exc))
        return warnings, failures

    def _refused(self, exp: Export, complaints_of_exp: list[str], secrets: list[str],
                 failures: list[tuple[Export, GaneshaHAError]]) -> bool:
        """Whether Ganesha complained about `exp`'s block (beyond a host name of it that does
        not resolve: a warning): then it is a failure, taken back."""
        errors = [e for e in complaints_of_exp if not unresolved_error(e, exp)]
        if not errors:
            return False
        where = f"Export_Id {exp.export_id} ({exp.pseudo})"
        failures.append((exp, ApplyError(scrub(f"Ganesha AddExport of {where}: Errors found: "
                                               f"{'; '.join(errors)}", secrets))))
        self._take_back(exp, failures)
        return True

    def _take_back(self, exp: Export, failures: list[tuple[Export, GaneshaHAError]]) -> None:
        """Remove an export this call added and that is wrong; a failed removal is said with
        its failure (it is never left serving half-read without a word)."""
        try:
            self._remove(exp)
        except GaneshaHAError:
            for i, (failed, error) in enumerate(failures):
                if failed is exp:
                    failures[i] = (exp, ApplyError(f"{error}; taking it back failed too"))

    def _verdict(self, exp: Export, method: str, path: str, got: LiveExport | None, said: str,
                 secrets: Sequence[str]) -> ApplyError | None:
        """Why `exp` is not live as the registry says after `method`, from its read-back `got`
        (None: not live); None when it is. `said` is Ganesha's answer, for the message."""
        where = f"Export_Id {exp.export_id} ({exp.pseudo})"
        if got is None:
            return ApplyError(f"Ganesha {method} of {where} said {scrub(said, secrets)!r}, but the export is not live")
        diffs = diff_export(exp, path, got, self.resolve)
        if diffs:
            return ApplyError(f"{where} after {method}: Ganesha holds it otherwise than the "
                              f"registry: {'; '.join(diffs)}")
        if serves_nobody(exp, self.resolve):
            return ApplyError(serves_nobody_reason(exp))
        return None

    def _apply_one(self, exp: Export, conf: Path, method: str, path: str, dbus: Any) -> list[str]:
        """AddExport/UpdateExport of one export's file `conf`, then its read-back; secrets of
        its FSAL never appear in a message, nor stay in `conf` once Ganesha has read it."""
        where = f"Export_Id {exp.export_id} ({exp.pseudo})"
        secrets = exp.ganesha.fsal.secrets()
        try:
            message = str(self._export_call(method, exp.export_id, path, str(conf),
                                            f"EXPORT(Export_Id={exp.export_id})"))
        except dbus.DBusException as exc:
            raise ApplyError(scrub(explain(method, exp, exc), secrets)) from None
        finally:
            if secrets:   # Ganesha has read it: a secret stays only in the volume's registry
                conf.unlink(missing_ok=True)
        if message.startswith("0 exports"):
            raise ApplyError(scrub(f"Ganesha {method} of {path} ({where}) did nothing: {one_line(message)}", secrets))
        try:
            errors = [e for e in reply_errors(message) if not unresolved_error(e, exp)]
            if errors:
                raise ApplyError(scrub(f"Ganesha {method} of {where}: Errors found: {'; '.join(errors)}", secrets))
            problem = self._verdict(exp, method, path, self.display(exp.export_id), one_line(message), secrets)
            if problem is not None:
                raise problem
        except ApplyError as exc:
            if method == "AddExport":  # ours since this call: never leave it serving half-read
                try:
                    self._remove(exp)
                except GaneshaHAError:
                    raise ApplyError(f"{exc}; taking it back failed too") from None
            raise
        return self._unresolved_warnings(exp)

    def _remove_timeout(self, exp: Export) -> float:
        """How long a RemoveExport of `exp` may block Ganesha's D-Bus thread, plus the usual
        timeout: PROXY_V4's receiver wakes up only after its RPC_Client_Timeout, GLUSTER's
        glfs_fini waits for its bricks' disconnect (module docstring, fsal_schema.remove_wait).
        In the agent, the action's deadline shortens it (GaneshaBus: the call then fails in
        time, with the reason)."""
        base = exp.ganesha.fsal.base
        if base.problem:
            return self.bus.timeout
        if base.name == "PROXY_V4":
            wait = self.bus.timeout + float(base.effective("RPC_Client_Timeout") or 60)
        else:
            wait = self.bus.timeout + base.schema.remove_wait
        return wait

    def _remove(self, exp: Export) -> None:
        dbus = import_dbus()
        timeout = self._remove_timeout(exp)
        try:
            self._export_call("RemoveExport", exp.export_id, None, dbus.UInt16(exp.export_id), timeout=timeout)
        except dbus.DBusException as exc:
            raise ApplyError(explain("RemoveExport", exp, exc)) from None
        except ServerUnavailableError as exc:
            if timeout == self.bus.timeout:
                raise
            why = ("a PROXY_V4 export's RemoveExport blocks Ganesha until its back-end connection's "
                   "receiver wakes (RPC_Client_Timeout), and up to 60 s more when its session renewer was "
                   "talking to the back-end (a back-end Lease_Lifetime of 5 s or less, or a back-end that "
                   "stopped answering)" if exp.ganesha.fsal.base.name == "PROXY_V4" else
                   f"a {exp.ganesha.fsal.base.name} export's RemoveExport blocks Ganesha while the FSAL "
                   "disconnects from its storage")
            said = str(exc).removesuffix(f": {self.bus.hint}")   # a known wait, not a guess at a hang
            raise ServerUnavailableError(f"{said}: {why}; the removal completes in Ganesha meanwhile") from None

    def withdraw(self, ctx: VolumeContext, exports: Sequence[Export]) -> None:
        """RemoveExport of each export live for its path (others are not ours, or not live:
        nothing to withdraw), in the given order. The removals whose FSAL does not block
        Ganesha go out together (GaneshaBus.call_each: Ganesha answers them in turn, in the
        order sent); each failure is the export's own. Every export is tried; one failure is
        raised as it is when this call had one export, else PartlyAppliedError lists them."""
        held = self._held(ctx, exports)
        failures: list[tuple[Export, GaneshaHAError]] = []
        together: list[Export] = []
        for exp in exports:
            if not held[exp.export_id]:
                continue
            if self._remove_timeout(exp) == self.bus.timeout:
                together.append(exp)
                continue
            failures += self._remove_together(ctx, together)
            together = []
            try:
                self._remove(exp)   # alone, with the wait its FSAL needs
                _unlink(self._conf_path(ctx, exp))
            except ApplyError as exc:
                failures.append((exp, exc))
        failures += self._remove_together(ctx, together)
        if failures:
            if len(exports) == 1:
                raise failures[0][1]
            raise PartlyAppliedError(failures)

    def _remove_together(self, ctx: VolumeContext, exports: list[Export]) -> list[tuple[Export, GaneshaHAError]]:
        """RemoveExports sent together; the (export, error) of each Ganesha refused."""
        if not exports:
            return []
        dbus = import_dbus()
        for exp in exports:
            self._seen.pop(exp.export_id, None)
        try:
            replies = self.bus.call_each(EXPORT_MGR_PATH, EXPORT_MGR_IFACE, "RemoveExport",
                                         [(dbus.UInt16(exp.export_id),) for exp in exports])
        except BaseException:
            self._forget()
            raise
        failures: list[tuple[Export, GaneshaHAError]] = []
        for exp, reply in zip(exports, replies):
            if isinstance(reply, dbus.DBusException):
                failures.append((exp, ApplyError(explain("RemoveExport", exp, reply))))
                continue
            if self._view is not None:
                self._view.pop(exp.export_id, None)
            _unlink(self._conf_path(ctx, exp))
        return failures


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
