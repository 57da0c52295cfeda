"""This node's Ganesha as placement and a take-over need it, apart from its live exports: the
FSAL modules it can load (and the other nodes' ones, published through attrd), the file-handle
risks and take-over problems of its config file (scope, recovery backend, NLM), and the EXPORT
blocks of its own that serve a volume's directories.

GaneshaBackend makes one `NodeChecks` at first use (`GaneshaBackend.node`), so a monitor that
finds every export live never imports this module; a start, a validate-all, a probe and a
monitor that repairs do. The facts are in ganesha_node.py (config), ganesha_plugins.py (FSAL
modules), node_attrs.py (what nodes publish) and placement.py (where a volume may go).
"""
from __future__ import annotations

import os
from pathlib import Path

SCOPE_ATTRIBUTE = "ganesha-ha-server-scope"   # node_attrs.py: each node's Ganesha server scope
FSALS_ATTRIBUTE = "ganesha-ha-fsals"           # node_attrs.py: the FSAL modules each node can load (placement.py)

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from ..fsal import Fsal
    from ..model import Export


class NodeChecks:
    """This node's Ganesha, from the settings' `[ganesha] plugins_dir` and `ganesha_config`:
    the plugins directory is found once, the config file read and parsed once while its mtime
    and size stay (`node_config`)."""

    def __init__(self, plugins_setting: str, config: str):
        self.plugins_setting = plugins_setting   # "": from the config's Plugins_Dir, else Ganesha's default
        self.config = config                     # "": no config file to read
        self._plugins_dir: Path | None = None
        self._node_conf: tuple[tuple[int, int] | None, tuple[Any, str | None]] | None = None

    @property
    def plugins_dir(self) -> Path:
        """Where this node's Ganesha loads FSAL modules (ganesha_plugins.plugins_dir), found once."""
        if self._plugins_dir is None:
            from .ganesha_plugins import plugins_dir

            self._plugins_dir = plugins_dir(self.plugins_setting, self.config)
        return self._plugins_dir

    def require(self, fsal: Fsal) -> None:
        """NotInstalledError when a module of `fsal`'s stack is not in `plugins_dir`
        (ganesha_plugins.require_fsal: a stat(2) per module)."""
        from .ganesha_plugins import require_fsal

        require_fsal(fsal, self.plugins_dir)

    def needs(self, exp: Export) -> frozenset[str]:
        """The FSAL modules `exp` loads (ganesha_plugins.needed_modules)."""
        from .ganesha_plugins import needed_modules

        return needed_modules(exp.ganesha.fsal)

    def modules_here(self) -> str:
        """The FSAL modules this node can load, as published (node_attrs.encode_names)."""
        from ..node_attrs import encode_names
        from .ganesha_plugins import loadable_modules

        return encode_names(loadable_modules(self.plugins_dir))

    def other_nodes_have(self) -> dict[str, frozenset[str] | None] | None:
        """The FSAL modules every other node published (node -> names; None for a value that
        cannot be read), None without a cluster: one attrd query, with this node's own
        modules published at the same time (node_attrs.publish_and_read: a node that lacks
        one keeps its value current at each monitor that finds it missing)."""
        import socket

        from .. import node_attrs

        _, everyone = node_attrs.publish_and_read(FSALS_ATTRIBUTE, self.modules_here())
        if everyone is None:
            return None
        me = node_attrs.local_node() or socket.gethostname()
        return {host: node_attrs.decode_names(value) for host, value in everyone.items() if host != me}

    def may_run(self, nodes: Sequence[str]) -> list[str]:
        """Those of `nodes` where Pacemaker may start this resource (`OCF_RESOURCE_INSTANCE`)
        now (pacemaker_nodes.runnable: one crm_simulate); [] when it cannot be asked; `nodes`
        unchanged outside an agent call (the CLI: no resource to ask about)."""
        resource = os.environ.get("OCF_RESOURCE_INSTANCE")
        if not resource:
            return list(nodes)
        from ..pacemaker_nodes import runnable

        allowed = runnable(resource)
        return [] if allowed is None else [n for n in nodes if n in allowed]

    def handle_risks(self, exports: Sequence[Export]) -> list[str]:
        """Why file handles of these exports would change when the volume moves to another
        node, as far as this node's Ganesha decides it: `fsid_device = true` in its
        NFS_CORE_PARAM makes every local FSAL's handle carry the device number."""
        local = [e for e in exports if not e.remote]
        if not local:
            return []
        from .ganesha_plugins import device_fsid

        config = self.config
        if config and device_fsid(Path(config)):
            return [f"{config} sets NFS_CORE_PARAM fsid_device = true: the file handles of "
                    f"{', '.join(e.pseudo for e in local)} carry this node's device number and go stale "
                    "(NFS4ERR_STALE) on a node where the volume's device has another minor number"]
        return []

    def node_config(self) -> tuple[Any, str | None]:
        """ganesha_node.load_node_config of `[ganesha] ganesha_config`: (NodeConfig, None) or
        (None, why). A start needs it twice (check_node, node_config_warnings), so it is read
        and parsed once per backend while the file's mtime and size stay (a file it
        `%include`s edited alone is seen by the next process)."""
        from .ganesha_node import load_node_config

        path = self.config
        try:
            st = os.stat(path)
            key: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except OSError:
            key = None
        if self._node_conf is None or key is None or self._node_conf[0] != key:
            self._node_conf = (key, load_node_config(path))
        return self._node_conf[1]

    def check_node(self) -> list[str]:
        """This node's Ganesha as a take-over needs it (ganesha_node.py), from its config file
        (`[ganesha] ganesha_config`): ValidationError for a recovery backend that cannot take
        over (field RecoveryBackend) and for a server scope that differs from one another
        node published (field Server_Scope); this node's scope is published first
        (node_attrs.py). Returns warnings for what cannot be known (no config file, no other
        node's scope yet) and for Enable_NLM, which keeps every take-over grace at its full
        length. The FSAL modules this node can load are published too (FSALS_ATTRIBUTE, at
        the same time as the scope: placement.py reads them when a module is missing on a node)."""
        from ..errors import ValidationError

        path = self.config
        conf, why = self.node_config() if path else (None, "[ganesha] ganesha_config is empty")
        modules = self.modules_here()
        problem = conf.takeover_problem() if conf is not None else None
        if conf is None or problem:   # the scope is not published then: the modules alone
            from .. import node_attrs

            node_attrs.publish(FSALS_ATTRIBUTE, modules)
        if conf is None:
            return [f"cannot read this node's Ganesha config ({why}): its recovery backend and NFSv4 server "
                    "scope are not checked"]
        if problem:
            raise ValidationError("RecoveryBackend", problem)
        warnings = self._check_scope(conf, modules)
        if conf.enable_nlm:
            warnings.append(f"{path}: Enable_NLM is on (Ganesha's default), so every take-over grace lasts the "
                            f"whole Grace_Period ({conf.grace_period} s) for every export of this Ganesha; "
                            "with NLM off it ends once the moved NFSv4.1+ clients have reclaimed")
        return warnings

    def node_config_warnings(self, mountpoint: str, exports: Sequence[Export]) -> list[str]:
        """This node's Ganesha config (`[ganesha] ganesha_config`, `%include`s followed) serving
        the volume's directories or Export_Ids in EXPORT blocks of its own (ganesha_node.exports_of,
        each named with its file and line); nothing when it cannot be read (check_node says so)."""
        from .ganesha_node import exports_of

        path = self.config
        conf = self.node_config()[0] if path else None
        return exports_of(conf, mountpoint, {e.export_id for e in exports},
                          {e.pseudo: e.export_id for e in exports}) if conf else []

    def _check_scope(self, conf, modules: str) -> list[str]:
        import socket

        from .. import node_attrs
        from ..errors import ValidationError

        me = node_attrs.local_node() or socket.gethostname()   # the name attrd files our value under
        scope = conf.scope(socket.gethostname())               # Ganesha's default uses the host name
        source = "its Server_Scope" if conf.server_scope else (
            "no Server_Scope: its Server_Owner" if conf.server_owner else "no Server_Scope: its host name")
        published, everyone = node_attrs.publish_and_read(SCOPE_ATTRIBUTE, scope, also={FSALS_ATTRIBUTE: modules})
        if not published:
            return [f"no cluster to compare this node's NFSv4 server scope {scope!r} with"]
        others = {h: v for h, v in (everyone or {}).items() if h != me}
        differ = {h: v for h, v in others.items() if v != scope}
        if differ:
            shown = ", ".join(f"{h} presents {v!r}" for h, v in sorted(differ.items())[:3])
            # the differing scopes first: Pacemaker keeps 128 characters of an exit reason
            # (lib/services/services_linux.c EXIT_REASON_MAX_LEN)
            raise ValidationError("Server_Scope", f"this node ({me}) presents NFSv4 server scope {scope!r} "
                                                  f"but {shown} ({source}, {conf.path}): NFSv4.1+ clients lose "
                                                  "their opens and locks on a move between them (RFC 8881 "
                                                  "2.10.4); set the same NFSv4 { Server_Scope = ...; } on every "
                                                  "node and restart ganesha.nfsd")
        if not others:
            return [f"no other node has published its NFSv4 server scope yet: this node's {scope!r} "
                    "is compared when they start or probe"]
        return []
