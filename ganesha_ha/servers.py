"""The NFS servers ganesha-ha drives: one table, and every list of servers comes from it.

The registry's server names, the CLI's `--server` choices, the agent's `server=` check, its
meta-data text and the setting that bounds one call to the server are read from `BACKENDS`;
backends/load.py imports the module a row names. Nothing is imported here: the agent's
`meta-data` reads this table at every call.
"""
from __future__ import annotations


class BackendInfo:
    """One row of the backend table. A plain class, as ocf.Param: `meta-data` reads the table
    and imports nothing else of the package (record.py included) on its way."""

    __slots__ = ("name", "description", "module", "factory", "programs", "call_timeout", "handle_id", "pseudo_tree",
                 "fsals", "instance")

    def __init__(self, name: str, description: str, module: str, factory: str, programs: str,
                 call_timeout: tuple[str, str], handle_id: str, pseudo_tree: bool = False, fsals: bool = False,
                 instance: tuple[str, str] | None = None):
        self.name = name                  # in the registry and the agent's server= parameter
        self.description = description    # one phrase, for the agent's meta-data and the CLI's help
        self.module = module              # the module under ganesha_ha.backends that implements it
        self.factory = factory            # its class, called with the settings
        self.programs = programs          # what a node needs to serve it (for messages and docs)
        self.call_timeout = call_timeout  # the setting (section, key) bounding one call to the server
        # the export's identity its file handles carry ("Export_Id" or "fsid"): changing it gives the
        # export's clients ESTALE; the registry keeps the other server's too, unused here (model.py)
        self.handle_id = handle_id
        # the server serves exports at their pseudo paths in one NFSv4 pseudo tree of its own,
        # mounting each under the live export above it (plan.py): the order of changes
        # matters, and pseudo paths must not meet another volume's (volume.py)
        self.pseudo_tree = pseudo_tree
        # the server loads each export through its FSAL (the export's FSAL record is what it
        # serves): a change of that record is live, in place or by withdrawing and adding again
        self.fsals = fsals
        # (module, class) of the backend that runs a server of the volume's own, started and
        # stopped with it (a volume initialised with --ganesha-mode instance); None: the
        # server can only be the node's one, shared by every volume
        self.instance = instance


BACKENDS: tuple[BackendInfo, ...] = (
    BackendInfo("knfsd", "the kernel NFS server, driven with exportfs", "knfsd", "KnfsdBackend",
                "exportfs (nfs-kernel-server), as knfsd.exportfs names it", ("knfsd", "exportfs_timeout"), "fsid"),
    BackendInfo("ganesha", "NFS-Ganesha, driven live over D-Bus", "ganesha", "GaneshaBackend",
                "dbus-python for the agent's interpreter (and nfs-ganesha)", ("ganesha", "dbus_timeout"), "Export_Id",
                pseudo_tree=True, fsals=True, instance=("ganesha_instance", "GaneshaInstanceBackend")),
)
SERVERS: tuple[str, ...] = tuple(b.name for b in BACKENDS)


def unused_identity(server: str, label: str) -> str | None:
    """Why the identity `label` ("Export_Id" or "fsid", as messages name them) of an export of a `server` volume is not
    that server's, or None when it is: the server whose file handles carry it, and what it
    is kept for. A volume's server is chosen once, at `volume init`; the registry keeps both
    identities so that `export dump` carries them to a volume of the other server."""
    if backend_info(server).handle_id == label:
        return None
    users = [b.name for b in BACKENDS if b.handle_id == label]
    return (f"the {label} is {' and '.join(users)}'s identity, which {server} (this volume's server, chosen at "
            f"volume init) does not use: kept in the registry only, for a move of the exports to a "
            f"{' or '.join(users)} volume (export dump)")

# How a volume's exports are served (the registry's "ganesha_mode", chosen at `volume init`):
# "shared": by the node's one server, with every other volume on the node (knfsd always);
# "instance": by a ganesha.nfsd of the volume's own, which the agent starts and stops with it
SHARED, INSTANCE = "shared", "instance"
MODES: tuple[str, ...] = (SHARED, INSTANCE)


def backend_info(server: str) -> BackendInfo:
    """The table's row for `server`; ValidationError (field "server") when there is none."""
    for info in BACKENDS:
        if info.name == server:
            return info
    from .errors import ValidationError

    raise ValidationError("server", f"must be {' or '.join(repr(s) for s in SERVERS)}, got {server!r}")


def check_mode(server: str, mode: str) -> None:
    """ValidationError (field "ganesha_mode") for a mode that is not one of MODES, or that
    `server` cannot run (a server of the volume's own needs a row with `instance`)."""
    if mode not in MODES:
        from .errors import ValidationError

        raise ValidationError("ganesha_mode", f"must be {' or '.join(repr(m) for m in MODES)}, got {mode!r}")
    if mode == INSTANCE and backend_info(server).instance is None:
        from .errors import ValidationError

        raise ValidationError("ganesha_mode", f"{server} has no per-volume instance mode: a {server} volume "
                                              "is served by the node's one server (shared)")


