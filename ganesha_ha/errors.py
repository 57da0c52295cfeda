"""One exception hierarchy for ganesha-ha.

Every error knows two things: the CLI exit code (documented in the README) and the OCF
return code the resource agent reports. The OCF mapping is deliberate, because Pacemaker
acts on it: a *configuration* error stops the resource cluster-wide, a *not installed* or
*permission* error bans it from this node only, and a *generic* error asks for a local
restart. A problem that is local to one node must never become a cluster-wide fatal one.
"""
from __future__ import annotations

# OCF return codes (OCF 1.1): kept here so that errors can name them without importing ocf.py.
OCF_SUCCESS = 0
OCF_ERR_GENERIC = 1
OCF_ERR_ARGS = 2
OCF_ERR_UNIMPLEMENTED = 3
OCF_ERR_PERM = 4
OCF_ERR_INSTALLED = 5
OCF_ERR_CONFIGURED = 6
OCF_NOT_RUNNING = 7
OCF_DEGRADED = 190  # OCF 1.1: running, but not fully (Pacemaker 2.1 shows it, recovers nothing)


class GaneshaHAError(Exception):
    """Base of every error ganesha-ha reports to a person or to Pacemaker."""

    exit_code = 1
    ocf_rc = OCF_ERR_GENERIC

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:  # one line, always
        return " ".join(self.message.split("\n"))


class ValidationError(GaneshaHAError):
    """Bad input: a field that does not pass validation. Names the field."""

    exit_code = 2
    ocf_rc = OCF_ERR_CONFIGURED

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


class ConfigError(GaneshaHAError):
    """The tool's own configuration file is wrong (names file and line)."""

    exit_code = 2
    ocf_rc = OCF_ERR_CONFIGURED


class NotMountedError(GaneshaHAError):
    """The volume's mount point is not a mounted file system here.

    For the agent this is a generic error: the Filesystem resource is ordered before us,
    so at start it is a transient/ordering problem on this node, never a fatal one.
    """

    exit_code = 3


class NotInitialisedError(GaneshaHAError):
    """The volume has no registry yet (`ganesha-ha volume init` was not run)."""

    exit_code = 3
    ocf_rc = OCF_ERR_CONFIGURED


class NotActiveError(GaneshaHAError):
    """The volume is not active on this node (`volume monitor` of a volume started elsewhere
    or not at all): like a volume that is not mounted here, a state of this node, not an
    error of the server. Exit 3; the agent's monitor answers OCF_NOT_RUNNING itself."""

    exit_code = 3
    ocf_rc = OCF_NOT_RUNNING


class RegistryError(GaneshaHAError):
    """The registry exists but cannot be read or written (corrupt, disk full, newer schema)."""

    exit_code = 3


class InsecureStateError(RegistryError):
    """State on the volume is a symlink, owned by someone else or writable by others."""

    ocf_rc = OCF_ERR_PERM


class LockTimeout(RegistryError):
    """Another ganesha-ha holds the volume's lock for too long."""


class NotFoundError(GaneshaHAError):
    """The named export is not in the registry."""

    exit_code = 4
    ocf_rc = OCF_ERR_CONFIGURED


class ConflictError(GaneshaHAError):
    """A duplicate directory, pseudo path, Export_Id or fsid."""

    exit_code = 5
    ocf_rc = OCF_ERR_CONFIGURED


class IdCollisionError(ConflictError):
    """An Export_Id of this volume is already served by this node for something else.

    Local to this node (another volume holds the id here), so the agent bans the resource
    from this node (OCF_ERR_PERM) instead of stopping it everywhere.
    """

    ocf_rc = OCF_ERR_PERM


class PseudoCollisionError(ConflictError):
    """A pseudo path of this volume meets one that this node's server already serves for
    another volume: the same path, or one nested in the other (plan.py: the server would
    mount one export inside the other's).

    Local to this node, like IdCollisionError: the agent bans the resource from this node
    (OCF_ERR_PERM), the volume may run on a node where the other volume is not.
    """

    ocf_rc = OCF_ERR_PERM


class InstanceConflictError(ConflictError):
    """Something else on this node holds what the volume's own Ganesha instance needs: the
    NFS port on its floating IP, or its D-Bus name (backends/ganesha_instance.py).

    Local to this node, like IdCollisionError: the agent bans the resource from this node
    (OCF_ERR_PERM), the volume may run on a node where nothing else holds them.
    """

    ocf_rc = OCF_ERR_PERM


class ServerUnavailableError(GaneshaHAError):
    """The NFS server or its control channel (D-Bus, exportfs) is not reachable now."""

    exit_code = 6


class NoAnswerError(ServerUnavailableError):
    """The server (or its bus) is there but did not answer within the time it was given: it
    may be hung while it still serves, so nothing may be concluded from the silence (not
    "down", not "nothing live")."""


class NotReadyError(GaneshaHAError):
    """Something this action needs on the node is not ready (sm-notify exited without
    notifying): a problem of this node now, so a generic error (retried, then moved)."""

    exit_code = 6


class NotInstalledError(GaneshaHAError):
    """A program or module the chosen server needs is missing on this node (exportfs,
    dbus-python, a Ganesha FSAL module): local to the node, so the resource moves."""

    exit_code = 6
    ocf_rc = OCF_ERR_INSTALLED


class ModuleMissingError(NotInstalledError):
    """A module one export needs (a Ganesha FSAL) is missing on this node: node-local, and
    `module` names it, so that what other nodes published of theirs (placement.py) can say
    whether the volume belongs elsewhere or the export is installed nowhere."""

    def __init__(self, module: str, lead: str, detail: str, package: str = "", who: str = ""):
        super().__init__(f"{lead}{f': {detail}' if detail else ''}{who}")
        self.module = module     # the FSAL's name in upper case; `lead` e.g. "FSAL MEM is not installed here
        #                          (Debian package nfs-ganesha-mem)", then ": " and:
        self.detail = detail     # "/usr/lib/.../libfsalmem.so is missing", or why it cannot be loaded
        self.package = package   # "Debian package nfs-ganesha-mem" ("": installed, not loadable here)
        self.who = who           # "; export /srv/vol1/m needs it" ("": the caller names the export)


class InstalledNowhereError(GaneshaHAError):
    """A module one export needs is missing here and on every node that published its
    modules, or no node has every module the volume needs (placement.py): the export is left
    out and the volume's others are served, wherever it runs (blast radius). Not node-local:
    moving the volume would not serve it. Exit 6, as for a module missing here."""

    exit_code = 6

    def __init__(self, message: str, module: str):
        super().__init__(message)
        self.module = module


class ApplyError(GaneshaHAError):
    """The live server refused a change. The registry was rolled back, or the message says what is pending."""

    exit_code = 7


class PartlyAppliedError(ApplyError):
    """One call to the server carried out some of its exports and not others (Ganesha: a
    batch of AddExports, backends/ganesha_batch.py). `failures` holds (export, error) for
    each export that is not live as asked, `warnings` what the read-back of the others warned
    of; the message is the first failure's. A caller that carries out each export on its own
    (execute.py) takes the failures from here instead of trying every export again."""

    def __init__(self, failures: list, warnings: list[str] | None = None):
        more = f" (and {len(failures) - 1} more export(s) failed)" if len(failures) > 1 else ""
        super().__init__(f"{failures[0][1]}{more}")
        self.failures = failures
        self.warnings = warnings or []
