"""The OCF resource agent `ocf:ganesha-ha:exports`: start/stop/monitor over volume.py.

Two modes:
- volume mode (`volume=`): one primitive per shared volume, managing every export in the
  volume's registry: one start, one stop and one cheap monitor pass for all of them;
- classic mode (`directory=`, `clientspec=`, `options=`, `fsid=`): a drop-in for
  ocf:heartbeat:exportfs (agent_classic.py; its parameters: classic.py), one export per
  directory; the fsid (given, or generated once) is stored in the registry of the file
  system containing the directories, as the 2010 agent stored it on the DRBD device.
A file system is managed by one volume-mode resource or by classic resources, never both.

What each answer means to Pacemaker is chosen on purpose (the README's table):
- each export is applied on its own (execute.py): `start` succeeds when the exports that can
  be served here are live; the monitor answers OCF_DEGRADED (190: shown, nothing recovered)
  while some export is not live, naming it and the server's reason;
- OCF_ERR_INSTALLED when the cause is this node (a program missing here, or an FSAL module
  that another node has, with every other module the volume needs: placement.py): the volume
  moves to a node that has it; an FSAL module that no node has (or no node has with all the
  others) leaves its export out, as a refused one;
- OCF_ERR_GENERIC only when nothing of the volume can be served here (or the server or its
  bus is down, the volume not mounted yet): local recovery, then a move;
- OCF_ERR_CONFIGURED for parameters that cannot work anywhere (also a volume initialised for
  another server, or a file system claimed by both modes, and with Ganesha a recovery backend
  that cannot take over or an NFSv4 server scope that differs from another node's:
  backend.check_node), in every action but stop;
- OCF_ERR_PERM for an id collision or unsafe state on this node (banned from this node);
- a probe answers "not running" whenever this node cannot be serving the volume (server
  down, volume not mounted, nothing live), a stop of a misconfigured resource succeeds.
Every failing action prints one `ocf-exit-reason:` line. `validate-all` runs `Agent.validate`,
the same checks `start` makes before it changes anything, except that an FSAL module missing on
this node is a warning there (a lack of this node, which the start answers with OCF_ERR_INSTALLED
or by leaving the export out: placement.py).
"""
from __future__ import annotations

import os
import sys

from . import __version__, ocf
from .agent_classic import ClassicMode, containing_mount
from .agent_params import action_settings, check_params, stop_flag, timeout_s

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from .classic import ClassicParams
    from .execute import ExportFailure
    from .registry import RegistryState


_answer = ocf.answer


def _not_here(local: list[ExportFailure], total: int) -> str:
    """The exit reason of OCF_ERR_INSTALLED for exports this node lacks something for. What
    matters comes first: Pacemaker keeps 128 characters of a reason (crm_mon shows those)."""
    from .execute import summary

    return f"cannot be served on this node: {summary(local)} ({len(local)} of {total} exports)"


class Agent(ClassicMode):
    """The agent's actions in both modes; the classic mode's own are in agent_classic.py."""

    def __init__(self, log: ocf.Logger, classic: ClassicParams | None = None):
        self.log = log
        self.server = ocf.param("server")
        self.settings = action_settings()
        if self.settings.log.get("syslog") and log.syslog is None:
            self.log = ocf.Logger(use_syslog=True)
        self.params = classic
        self.classic = classic is not None
        from .backends.load import get_backend
        from .volume import Volume

        if classic is not None:
            mounts = {containing_mount(d) for d in classic.directories}
            mp = mounts.pop()
            self.other_mounts = sorted(mounts)
        else:
            mp, self.other_mounts = ocf.param("volume"), []
        self.backend = get_backend(self.server, self.settings)
        self.volume = Volume(mp, self.settings, ip=ocf.param("ip") or None, backend=self.backend,
                             server=self.server)

    # ---- the checks start and validate-all share --------------------------------------
    def validate(self) -> None:
        """validate-all: the checks `start` makes before it changes anything (`_validate`), and
        warnings: each FSAL module missing here, which start answers with OCF_ERR_INSTALLED
        (`_module_warnings`: a lack of this node, not a configuration error), and the node's
        own server config serving the volume outside ganesha-ha (`_node_export_warnings`)."""
        state = self._validate()
        if state is not None:
            self._module_warnings(state)
        self._node_export_warnings(state)

    def _node_export_warnings(self, state: RegistryState | None) -> None:
        """The node's own server config exporting the volume (or a classic directory) outside
        ganesha-ha: Ganesha EXPORT blocks, exports(5) lines (backend.node_config_warnings, each
        named with its file and line). Warnings, not OCF_ERR_CONFIGURED: they are one node's
        files (pcs runs validate-all on one node; a refused start would stop the resource on
        every node), the volume is served as registered all the same, and what they risk
        happens only when that node's server re-reads them. A volume not mounted here is
        compared by its directories alone (its Export_Ids and fsids are in its registry).
        Volume-mode start says the same through Volume.start; classic start runs this."""
        if self.classic and self.params is not None:
            for d in self.params.directories:
                for warning in self.backend.node_config_warnings(str(d), []):
                    self.log.warning(warning)
            return
        backend = self.volume.backend(state) if state is not None else self.backend
        for warning in backend.node_config_warnings(str(self.volume.mountpoint),
                                                    state.exports if state is not None else []):
            self.log.warning(f"{self.volume.mountpoint}: {warning}")

    def _validate(self) -> RegistryState | None:
        """Everything `start` checks before it changes anything, as far as this node can tell
        (start runs exactly this; returns the volume's registry when it is mounted): the
        parameters were checked by `check_params` and the settings file read; here the
        programs, this node's server set-up compared with the other nodes' (backend.check_node;
        its warnings logged; not for a volume served by a Ganesha instance of its own), then,
        when the volume is mounted here, the volume's server, the classic directories (in one
        file system, inside it, existing, without symbolic links), and that the file system is
        not claimed by both modes. A volume that is not mounted here is no configuration
        error: `start` reports it."""
        from .errors import NotMountedError

        self.backend.check_installed()
        if self.classic:
            self._check_node()
            self._classic_validate()
            return None
        self._check_no_classic_here()
        try:
            state = self.volume.load()
        except NotMountedError:
            self._check_node()
            return None
        if self.volume.backend(state).own_server:
            # not the node's Ganesha: the volume's own, whose config is ours (RecoveryBackend
            # fs, a server scope of the volume's, the same on every node)
            self._instance_validate(state)
        else:
            self._check_node()
        return state

    def _module_warnings(self, state: RegistryState) -> None:
        """What start checks per export on this node and validate-all only reports: an FSAL
        module missing here. Not a configuration error (OCF_ERR_CONFIGURED would stop the
        volume on every node, and pcs runs validate-all on one node only): the start answers
        OCF_ERR_INSTALLED when another node has every module the volume needs (it moves
        there), else serves the others and leaves those exports out (placement.py). One
        warning per missing module, naming the exports that need it and which of the two."""
        from .placement import missing_here

        lacking: dict[tuple[str, bool], list[str]] = {}
        for f in missing_here(self.volume.backend(state), state.exports):
            lacking.setdefault((str(f.error), f.node_local), []).append(f"{f.export.pseudo} (Export_Id "
                                                                        f"{f.export.export_id})")
        for (why, moves), exports in lacking.items():
            shown = ", ".join(exports[:5]) + (f" and {len(exports) - 5} more" if len(exports) > 5 else "")
            then = ("a start on this node answers OCF_ERR_INSTALLED (the volume moves to a node that has every "
                    "module it needs), a lack of this node" if moves else
                    "a start on this node serves the volume's other exports and leaves these out (the monitor "
                    "answers OCF_DEGRADED)")
            self.log.warning(f"{self.volume.mountpoint}: {why}; needed by {shown}: {then}, not a configuration error")

    def _check_node(self) -> None:
        """This node's server set-up compared with the other nodes' (backend.check_node),
        its warnings logged."""
        for warning in self.backend.check_node():
            self.log.warning(warning)

    def _instance_validate(self, state: RegistryState) -> None:
        """A volume served by its own ganesha.nfsd: the instance binds `ip` and its program must be here."""
        from .backends.ganesha_instance_conf import check_ip

        check_ip(self.volume.ip)
        self.volume.backend(state).check_installed()

    def _check_no_classic_here(self) -> None:
        from .errors import ValidationError

        dirs = self.volume.node.classic_paths()
        if dirs:
            shown = ", ".join(str(self.volume.mountpoint / d) for d in dirs[:3])
            raise ValidationError("volume", f"classic resources (directory=) export {shown} from "
                                            f"{self.volume.mountpoint} on this node: a file system is managed "
                                            "by one volume-mode resource or by classic resources, not both "
                                            "(move those directories into the volume with 'ganesha-ha export "
                                            "add' and remove the classic resources)")

    def _check_no_volume_here(self) -> None:
        from .errors import ValidationError

        if self.volume.is_active():
            raise ValidationError("directory", f"{self.volume.mountpoint} is managed on this node by a "
                                               f"volume-mode resource (volume={self.volume.mountpoint}): a file "
                                               "system is managed by one volume-mode resource or by classic "
                                               "resources, not both (add the directory with 'ganesha-ha export "
                                               "add' instead)")

    # ---- volume mode ------------------------------------------------------------------
    def start(self) -> int:
        if self.classic:
            return self.classic_start()
        from .errors import ServerUnavailableError

        self._validate()
        state = self.volume.load()
        own = self.volume.backend(state).own_server   # a server of its own is started by the start
        if self.volume.is_active():
            # a check only: no repair, and never a save of client-recovery state, which on a
            # node that has not restored the volume's copy would wipe it (the start restores)
            try:
                mon = self.volume.monitor(repair=False, save=False)
            except ServerUnavailableError:
                if not own:
                    raise
            else:
                if mon.running and mon.drift.clean:
                    self.log.info(f"{self.volume.mountpoint}: already started here")
                    return ocf.OCF_SUCCESS
        if not own:
            self._wait_for_server(state)
        res = self.volume.start()
        for warning in res.warnings:
            self.log.warning(f"{self.volume.mountpoint}: {warning}")
        for note in res.notes:
            self.log.info(f"{self.volume.mountpoint}: {note}")
        self.log.info(f"{self.volume.mountpoint}: {res.applied} exports live on {self.server}, "
                      f"{res.recovery_records} client records restored"
                      + (f", grace started ({res.grace})" if res.grace else ", no grace needed"))
        return self._partial_start(res.failed, res.applied + len(res.failed))

    def _partial_start(self, failed: list[ExportFailure], total: int) -> int:
        """The answer of a start that served what it could: success, unless a cause is this
        node's (then OCF_ERR_INSTALLED: the volume belongs on a node that has what is missing)."""
        if not failed:
            return ocf.OCF_SUCCESS
        from .execute import summary

        local = [f for f in failed if f.node_local]
        if local:
            return _answer(self.log, ocf.OCF_ERR_INSTALLED, _not_here(local, total))
        self.log.warning(f"{self.volume.mountpoint}: {len(failed)} of {total} exports could not go live "
                         f"(the others are live): {summary(failed)}")
        return ocf.OCF_SUCCESS

    def stop(self) -> int:
        if self.classic:
            return self.classic_stop()
        notes: list[str] = []
        n = self.volume.stop(unlock=self._unlock_on_stop(), lease_wait=self._lease_wait(),
                             notes=notes)
        self.log.info(f"{self.volume.mountpoint}: stopped, {n} live exports withdrawn"
                      + "".join(f"; {note}" for note in notes))
        return ocf.OCF_SUCCESS

    def _unlock_on_stop(self) -> bool:
        """unlock_on_stop, as a stop reads it (a bad value is the default)."""
        return stop_flag("unlock_on_stop", True)

    def _lease_wait(self) -> float:
        """wait_for_leasetime_on_stop: at most half of the stop's timeout (the rest is the stop's)."""
        return timeout_s(60.0) / 2 if stop_flag("wait_for_leasetime_on_stop", False) else 0.0

    def monitor(self) -> int:
        if self.classic:
            return self.classic_monitor()
        from .errors import ServerUnavailableError

        self._check_no_classic_here()
        probe = ocf.is_probe()
        if not self.volume.is_active():
            if probe:
                self._probe_configuration()
            return ocf.OCF_NOT_RUNNING
        if probe:   # a re-probe (crm_resource --refresh) of the node running it publishes anew too
            self._publish_node()
        try:
            res = self.volume.monitor(probe=probe)
        except ServerUnavailableError:
            if not probe:
                raise
            return self._probe_server_down()
        if not res.running:
            return ocf.OCF_NOT_RUNNING
        stray = res.drift.stray if res.repaired else []
        if res.repaired - len(stray) > 0:
            self.log.warning(f"{self.volume.mountpoint}: {res.repaired - len(stray)} exports were not "
                             "live as the registry says; re-applied")
            for reason in res.drift.reasons:
                self.log.warning(f"{self.volume.mountpoint}: was not as registered: {reason}")
        for warning in res.drift.warnings:
            self.log.warning(f"{self.volume.mountpoint}: {warning}")
        if stray:
            self.log.warning(f"{self.volume.mountpoint}: withdrew Export_Id(s) {', '.join(map(str, stray))}: "
                             "live for paths in the volume that the registry does not list")
        if res.recovery_saved:
            self.log.info(f"{self.volume.mountpoint}: client-recovery state saved to the volume")
        if res.recovery_error:
            self.log.warning(f"{self.volume.mountpoint}: client-recovery state not saved: {res.recovery_error}")
        return self._served_answer(res.failed, res.exports)

    def _served_answer(self, failed: list[ExportFailure], total: int) -> int:
        """A monitor's answer from the exports still not live: 0 for none; OCF_ERR_INSTALLED
        when a cause is this node's; OCF_ERR_GENERIC when nothing is served; else OCF_DEGRADED."""
        if not failed:
            return ocf.OCF_SUCCESS
        from .execute import summary

        local = [f for f in failed if f.node_local]
        if local:
            return _answer(self.log, ocf.OCF_ERR_INSTALLED, _not_here(local, total))
        not_live = len({f.export.path for f in failed})
        if not_live >= total:
            return _answer(self.log, ocf.OCF_ERR_GENERIC, f"none of the {total} exports is live: {summary(failed)}")
        return _answer(self.log, ocf.OCF_DEGRADED, f"not live: {summary(failed)} ({not_live} of {total} "
                                                   "exports; the others are live)")

    def _probe_configuration(self) -> None:
        """A probe of a volume not active here reads its registry when it is mounted, for the
        one answer that is not "not running": a volume initialised for another server. It
        also publishes this node's facts for the other nodes' checks (Ganesha's server
        scope: backend.check_node), whatever they find: a probe only says "not running"."""
        from .errors import GaneshaHAError, ValidationError

        self._publish_node()
        try:
            self.volume.load()
        except ValidationError:
            raise
        except GaneshaHAError:
            pass

    def _publish_node(self) -> None:
        """A probe publishes this node's facts for the other nodes' checks (backend.check_node:
        Ganesha's server scope and FSAL modules), whatever they find: a probe never fails
        for them."""
        from .errors import GaneshaHAError

        try:
            self.backend.check_node()
        except GaneshaHAError:
            pass

    def _probe_server_down(self) -> int:
        """A probe with the server down: not running, unless exports of the volume are still
        live (knfsd's etab can be read without a working exportfs): then a generic error."""
        from .volume import require_nothing_live

        state = self.volume.load()
        require_nothing_live(self.volume.backend(state), self.volume.ctx(state), state.exports)
        return ocf.OCF_NOT_RUNNING

    def _wait_for_server(self, state: RegistryState) -> None:
        """Give a server that is restarting (e.g. systemd's Restart=) part of the start timeout
        to come back, instead of failing the start at once: a failed start is fatal on the node.
        Not one that is there and does not answer (hung): no restart is under way."""
        import time

        from .errors import NoAnswerError, ServerUnavailableError

        backend = self.volume.backend(state)
        deadline = time.monotonic() + min(timeout_s(20.0) / 2, 30.0)
        while True:
            try:
                backend.require_running()
                return
            except ServerUnavailableError as exc:
                if time.monotonic() >= deadline or isinstance(exc, NoAnswerError):
                    raise
                self.log.info(f"waiting for the server: {exc}")
                time.sleep(0.5)


def run(action: str) -> int:
    if action == "meta-data":
        sys.stdout.write(ocf.meta_data())
        return ocf.OCF_SUCCESS
    if action in ("usage", "help"):
        sys.stdout.write(ocf.usage())
        return ocf.OCF_SUCCESS
    log = ocf.Logger()
    # with HA_debug=1: which install answers (a stale install-agent file is a classic puzzle)
    log.debug(f"{action}: ganesha_ha {__version__} from {os.path.dirname(os.path.abspath(__file__))}, "
              f"{sys.executable}")
    if action not in ocf.RUN_ACTIONS:
        sys.stderr.write(ocf.usage())
        return ocf.OCF_ERR_UNIMPLEMENTED
    from .errors import GaneshaHAError, NotInitialisedError, NotMountedError

    try:
        classic = check_params(stop=action == "stop")
    except GaneshaHAError as exc:
        # a probe or stop of a misconfigured resource must not escalate: nothing can be running
        return ocf.unconfigured(log, action, exc)

    def step() -> int:
        agent = Agent(log, classic)
        # the programs the settings name (knfsd.exportfs), not whichever is on PATH; a stop must
        # work whenever it can: nothing to serve needs no program
        if action not in ("validate-all", "stop"):
            agent.backend.check_installed()
        if action in ("reload-agent", "reload"):
            log.info("reloaded parameters (config, bus_address); nothing to restart")
        return ocf.dispatch(agent, action)

    # a probe of a volume not mounted or never initialised here: nothing served here
    return ocf.perform(log, action, step, probe_not_running=(NotMountedError, NotInitialisedError))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        sys.stderr.write(ocf.usage())
        return ocf.OCF_ERR_ARGS
    return run(args[0])


if __name__ == "__main__":
    sys.exit(main())
