"""The knfsd backend: exportfs for changes, etab for live state; rmtab is its recovery store.

What "running" means here: knfsd is controllable on this node when `exportfs` runs and the
state directory (etab, rmtab) exists. The kernel module is *not* required: the kernel asks
mountd, and mountd answers from etab, so what exportfs writes there is served as soon as
nfsd and mountd run (the nfs-server unit, a separate resource). `nfsd_threads()` tells
whether the kernel server is up, for status output.

Live state is etab, read once per query and parsed by `knfsd_table.parse_etab_entries`;
exportfs's own listing is never run per export. An entry is compared by (directory,
client, the options ganesha-ha sets), so a changed option is drift, while etab's filled-in
defaults are not.

Cost of a change (processes), measured with exportfs 2.6.2 (tests/server/test_knfsd_exportfs.py):
- exportfs takes one `-o` per run for all its `CLIENT:DIR` arguments, and every export has
  its own `fsid=`, so `-o` can only share a run between clients of one export with equal
  options. For more than one option string, `apply` writes all entries into one exports
  file and runs a single `exportfs -a` in a private mount namespace in which that file is
  /etc/exports and /etc/exports.d is empty (set up in the child between fork and exec, so
  it is one process and nothing is ever mounted in the host's namespace). If the namespace
  cannot be made (no CAP_SYS_ADMIN, no /etc/exports nor /etc/exports.d), it falls back to
  one `exportfs -i -o` per option string (and per 100 kB of arguments).
- `withdraw` is `exportfs -u` with every `CLIENT:DIR`, one run per 100 kB of arguments.
So 1000 exports cost 1 process to apply and 1 to withdraw.

Contract with the volume layer:
- `ctx.mountpoint` is where the volume is mounted (the caller checks that it is mounted);
  `ctx.state_dir` is the volume's `.ganesha-ha` directory, which must exist: the rmtab copy
  is kept there (recovery/rmtab.py). `volume_uuid` and `ip` are not used by knfsd.
- `apply(exports)` makes each given export's directory exactly as registered: missing or
  changed (directory, client) entries are exported, entries of those directories for
  clients not in the registry (or with access None) are unexported, correct entries cost
  nothing. It refuses with IdCollisionError before changing anything when one of the fsids
  is exported for another directory.
- `withdraw(exports)` unexports each directory for every client etab lists, registered or not.
- Recovery: one store, the volume's lines of rmtab (`recovery_stores`). At stop the volume
  saves, withdraws, then `after_stop` releases the NLM locks of the volume's file system and
  of its floating IP (/proc/fs/nfsd, the `proc_nfsd` setting) so the file system can be
  unmounted, and may wait out the NFSv4 lease time (ocf:heartbeat:exportfs's
  unlock_on_stop and wait_for_leasetime_on_stop).
"""
from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from ..errors import ApplyError, IdCollisionError, NotInstalledError, ServerUnavailableError, ValidationError
from ..fsutil import require_export_directory
from ..linux import run_capturing_stderr
from ..model import Export
from ..recovery.nsm import nsm_store
from ..recovery.rmtab import RmtabStore
from ..context import VolumeContext
from . import Drift
from .knfsd_table import (ARG_LIMIT, DesiredEntry, EtabEntry, PathState, client_kind, desired_entries,
                          export_argvs, export_dir, find_collisions, group_by_options,
                          index_by_path, match_path, normalize_fsid, parse_etab_entries, unexport_argvs)
from .node_server import NodeServer
from .resolve import Resolver

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from typing import Any

    from ..recovery import RecoveryStore

# knfsd_batch (subprocess, shutil, tempfile: ~15 ms) and knfsd_kernel are imported where they
# are used: the agent's monitor of a correct volume needs neither (nor ctypes, which linux.py
# imports on its first libc call).
NOT_INSTALLED = "not found or not executable (install nfs-kernel-server / nfs-utils)"


def _problems(missing: Sequence[DesiredEntry], st: PathState) -> list[str]:
    """How one directory's etab lines differ from the registry, one phrase per line."""
    return ([f"{d.arg} missing" for d in missing]
            + [f"{d.arg} has {'; '.join(diffs)}" for d, _, diffs in st.changed]
            + [f"{e.unexport_arg} exported, not in the registry" for e in st.extra])


def one_line(text: str | bytes, limit: int = 600) -> str:
    """exportfs's stderr as one line: lines joined with '; ', whitespace collapsed, capped."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    seen: list[str] = []
    for line in text.splitlines():
        line = " ".join(line.replace("exportfs: ", "").split())
        if line and line not in seen:
            seen.append(line)
    out = "; ".join(seen) or "(no message)"
    return out if len(out) <= limit else out[: limit - 1] + "…"


class KnfsdBackend(NodeServer):
    """Drives the kernel NFS server through exportfs; reads etab and rmtab directly."""

    name = "knfsd"
    own_server = False   # the node's one server, shared by the volumes here

    def __init__(self, settings: Any):
        k = settings.knfsd
        self.exportfs = str(k["exportfs"])
        self.nfs_state_dir = Path(k["state_dir"])
        self.runtime_dir = Path(settings.node["runtime_dir"]) / "knfsd"
        # System locations, attributes so that tests can point them elsewhere.
        self.proc_rpc = Path("/proc/net/rpc")
        self.proc_nfsd = Path(k.get("proc_nfsd") or "/proc/fs/nfsd")   # a setting: tests use a stand-in
        # where exportfs reads exports(5) (compiled in): hidden from the batch's `exportfs -a`
        self.etc_exports = Path("/etc/exports")
        self.etc_exports_d = Path("/etc/exports.d")
        # the same files as the settings name them, compared with each volume (node_config_warnings)
        self.exports_file = str(k.get("exports_file") or "/etc/exports")
        self.exports_dir = str(k.get("exports_dir") or "/etc/exports.d")
        self.arg_limit = ARG_LIMIT
        self.timeout = float(k["exportfs_timeout"])   # seconds one exportfs run may take
        self.rmtab = RmtabStore(self.nfs_state_dir)
        self.nsm = nsm_store(settings)
        self.flush_checks = 3       # bounded re-flushes while nfsd.export still lists a directory
        self.batch = True           # one `exportfs -a` in a private namespace for many option strings
        self.exportfs_runs = 0      # exportfs processes this instance started (diagnostics)
        self._ns_broken = False
        self._running_ok = False
        self._addr_cache: dict[str, frozenset[str] | None] = {}
        self._resolver = Resolver(min(2.0, self.timeout / 4), flags=0)

    # ---- programs and files ---------------------------------------------------------------
    def _exe(self) -> str | None:
        if os.path.isabs(self.exportfs):
            exe: str | None = self.exportfs
        else:
            import shutil

            exe = shutil.which(self.exportfs)
        if exe and os.path.isfile(exe) and os.access(exe, os.X_OK):
            return exe
        return None

    def _run(self, argv: list[str], preexec: Callable[[], None] | None = None) -> tuple[int, str]:
        """Run exportfs; (exit code, stderr). Never through a shell. Without `preexec` (the
        monitor's check, every change) through linux.run_capturing_stderr, which spares the
        agent the import of subprocess; with it, knfsd_batch.run_in_namespace."""
        self.exportfs_runs += 1
        env = dict(os.environ, LC_ALL="C")
        try:
            if preexec is None:
                rc, err = run_capturing_stderr(argv, env, self.timeout)
            else:
                from .knfsd_batch import run_in_namespace

                rc, err = run_in_namespace(argv, env, preexec, self.timeout)
        except (FileNotFoundError, PermissionError):
            raise NotInstalledError(f"{self.exportfs}: {NOT_INSTALLED}") from None
        except TimeoutError:
            raise ServerUnavailableError(f"exportfs did not finish within {self.timeout:g} s") from None
        return rc, err.decode("utf-8", "replace")

    def _etab(self) -> list[EtabEntry]:
        path = self.nfs_state_dir / "etab"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise ServerUnavailableError(f"cannot read {path}: {exc.strerror}") from None
        return parse_etab_entries(data.decode("utf-8", "surrogateescape"))

    # ---- installed / running ----------------------------------------------------------------
    def check_installed(self) -> None:
        if self._exe() is None:
            raise NotInstalledError(f"{self.exportfs}: {NOT_INSTALLED}")

    def check_node(self) -> list[str]:
        """Nothing to compare between nodes: knfsd's NFSv4 state cannot move (README)."""
        return []

    def require_running(self) -> None:
        self.check_installed()
        if not self.nfs_state_dir.is_dir():
            raise ServerUnavailableError(f"{self.nfs_state_dir} (knfsd's state directory) does not exist")
        if self._running_ok:
            return
        rc, err = self._run([self._exe() or self.exportfs])
        if rc != 0:
            raise ServerUnavailableError(f"exportfs failed (exit {rc}): {one_line(err)}")
        self._running_ok = True

    def check_export(self, exp: Export, mountpoint: Path) -> None:
        """Every path and client the model accepts can be written to an exportfs argument or an
        exports file (knfsd_table escapes paths); only an export whose data is in an FSAL's own
        namespace (MEM, CEPH, ...) is Ganesha's alone."""
        if exp.remote:
            raise ValidationError("fsal", f"an FSAL {exp.ganesha.fsal.base.name} export has no directory on "
                                          "the volume: only server=ganesha can serve it")

    def handle_risks(self, exports: Sequence[Export]) -> list[str]:
        """knfsd's handles carry the export's fsid from the registry: the same on every node."""
        return []

    def check_installed_for(self, exp: Export) -> None:
        """Nothing beyond exportfs (check_installed): knfsd has no per-export modules."""

    def needs(self, exp: Export) -> frozenset[str]:
        return frozenset()

    def other_nodes_have(self) -> dict[str, frozenset[str] | None] | None:
        return None

    def may_run(self, nodes: Sequence[str]) -> list[str]:
        return list(nodes)

    def is_running(self) -> bool:
        try:
            self.require_running()
            return True
        except (ServerUnavailableError, NotInstalledError):
            return False

    def nfsd_threads(self) -> int | None:
        """Kernel nfsd threads now (0: stopped); None when the nfsd module is not loaded."""
        from .knfsd_kernel import read_number

        return read_number(self.proc_nfsd / "threads")

    # ---- live state --------------------------------------------------------------------------
    def _addresses(self, host: str) -> frozenset[str] | None:
        """The addresses of a client name or address; None when the resolver did not answer
        within this call's budget (resolve.py)."""
        if host not in self._addr_cache:
            try:
                addrs: frozenset[str] | None = frozenset({str(ipaddress.ip_address(host))})
            except ValueError:
                found = self._resolver(host)
                addrs = None if found is None else frozenset(str(ipaddress.ip_address(a)) for a in found)
            self._addr_cache[host] = addrs
        return self._addr_cache[host]

    def _same_host(self, wanted: str, live: str) -> bool:
        """exportfs writes a host under any name it knows for the address: compare addresses."""
        return bool((self._addresses(wanted) or frozenset()) & (self._addresses(live) or frozenset()))

    def action(self):  # -> AbstractContextManager[None]
        """Nothing to keep: each look at etab is one file read."""
        from contextlib import nullcontext

        return nullcontext()

    def served_ids(self) -> set[int]:
        """knfsd has no Export_Ids: exports are known by directory and fsid."""
        return set()

    def reach(self) -> str | None:
        return None   # exportfs and etab: nothing configurable to reach

    def fall_back(self, recorded: str) -> str | None:
        return None

    def node_config_warnings(self, mountpoint: str, exports: Sequence[Export]) -> list[str]:
        """The node's exports(5) files (`[knfsd] exports_file` and `exports_dir`/*.exports)
        exporting a directory of the volume or one of its fsids (node_exports: each line named
        with its file and line number); a file that cannot be read or parsed is said too."""
        from .node_exports import exports5_entries, exports5_warning, follow_links, of_volume, read_exports_files

        sources, problems = read_exports_files(self.exports_file, self.exports_dir)
        entries, bad = exports5_entries(sources)
        entries = follow_links(entries)     # exportfs exports where a line's links lead
        hits = of_volume(entries, mountpoint, fsids=[e.knfsd.fsid for e in exports if not e.remote])
        return exports5_warning(hits, mountpoint) + [
            f"cannot compare this node's exports(5) files with the volume {mountpoint}: {p}" for p in problems + bad]

    def served_paths(self, ids: Iterable[int]) -> dict[int, str]:
        return {}

    def path_states(self, ctx: VolumeContext, exports: Sequence[Export],
                    entries: list[EtabEntry] | None = None) -> dict[str, PathState]:
        """Per export path: which wanted etab entries are live, changed, missing or extra."""
        self._addr_cache = {}
        self._resolver = Resolver(min(2.0, self.timeout / 4), flags=0)
        by_path = index_by_path(self._etab() if entries is None else entries)
        return {exp.path: match_path(desired_entries(ctx.mountpoint, exp),
                                     by_path.get(export_dir(ctx.mountpoint, exp), []),
                                     self._same_host)
                for exp in exports}

    def live_paths(self, ctx: VolumeContext, exports: Sequence[Export]) -> dict[str, bool]:
        """An export is live when its directory is in etab for any client, and exists (exportfs
        writes the etab line of a directory that does not: fsutil.require_export_directory)."""
        by_path = index_by_path(self._etab())
        dirs = {exp.path: export_dir(ctx.mountpoint, exp) for exp in exports}
        return {path: d in by_path and os.path.isdir(d) for path, d in dirs.items()}

    def _unresolved(self, entry: DesiredEntry) -> bool:
        """A host name that does not resolve on this node (or not in this call's time): exportfs
        says "Failed to resolve" and writes no etab line (exit 0, measured with nfs-utils 2.6.2)."""
        if client_kind(entry.client) != "fqdn":
            return False
        try:
            ipaddress.ip_address(entry.client)
            return False
        except ValueError:
            return not self._addresses(entry.client)

    def _missing(self, st: PathState) -> list[DesiredEntry]:
        """The wanted lines of one directory that are missing and count as such. A client name
        that does not resolve here is a warning while the export serves some other client (the
        name may resolve where its clients are); an export it leaves serving nobody here is not
        live (the same rule as Ganesha's, grants.py)."""
        unresolved = [d for d in st.missing if self._unresolved(d)]
        if unresolved and len(unresolved) == len(st.missing) and not st.ok and not st.changed:
            return list(st.missing)
        return [d for d in st.missing if d not in unresolved]

    def _warnings(self, exports: Sequence[Export], states: dict[str, PathState]) -> list[str]:
        out = []
        for exp in exports:
            st = states[exp.path]
            counted = self._missing(st)
            out += [f"{d.path}: client {d.client} does not resolve on this node; knfsd grants it nothing here"
                    for d in st.missing if d not in counted]
        return out

    def drift(self, ctx: VolumeContext, exports: Sequence[Export]) -> Drift:
        entries = self._etab()
        states = self.path_states(ctx, exports, entries)
        drift = Drift()
        for exp in exports:
            st = states[exp.path]
            missing = self._missing(st)
            if not os.path.isdir(export_dir(ctx.mountpoint, exp)):
                drift.missing.append(exp)   # its etab lines serve nothing (apply says why)
            elif missing and not st.ok and not st.changed:
                drift.missing.append(exp)
            elif missing or st.changed or st.extra:
                drift.changed.append(exp)
                drift.reasons.append(f"{export_dir(ctx.mountpoint, exp)}: {'; '.join(_problems(missing, st))}")
        drift.warnings = self._warnings(exports, states)
        drift.foreign = [f"fsid {fsid} of {ours} is exported for {live}"
                         for fsid, ours, live in self._collisions(ctx, exports, entries)]
        return drift

    def _collisions(self, ctx: VolumeContext, exports: Sequence[Export],
                    entries: list[EtabEntry]) -> list[tuple[str, str, str]]:
        wanted = {normalize_fsid(e.knfsd.fsid): export_dir(ctx.mountpoint, e) for e in exports}
        return find_collisions(entries, wanted)

    def check_collisions(self, ctx: VolumeContext, exports: Sequence[Export]) -> None:
        self._raise_collisions(ctx, exports, self._etab())

    def _raise_collisions(self, ctx: VolumeContext, exports: Sequence[Export],
                          entries: list[EtabEntry]) -> None:
        hits = self._collisions(ctx, exports, entries)
        if hits:
            fsid, ours, live = hits[0]
            more = f" (and {len(hits) - 1} more)" if len(hits) > 1 else ""
            # the export is named by its fsid: where it is left out, the caller names its directory first
            raise IdCollisionError(f"fsid {fsid} is already exported by this node's knfsd "
                                   f"for {live}{more}; give the exports distinct fsids")

    # ---- changes -----------------------------------------------------------------------------
    def apply(self, ctx: VolumeContext, exports: Sequence[Export]) -> list[str]:
        """Export what is missing or changed, unexport clients no longer wanted, read etab back:
        every wanted (directory, client) line with the options ganesha-ha sets, no other line
        for those directories (ApplyError naming the line, the option and both values).
        Returns warnings (client host names that do not resolve here)."""
        for exp in exports:
            require_export_directory(str(export_dir(ctx.mountpoint, exp)), "knfsd")
        entries = self._etab()
        self._raise_collisions(ctx, exports, entries)
        states = self.path_states(ctx, exports, entries)
        extra = [e for st in states.values() for e in st.extra]
        to_export = [d for st in states.values() for d in st.to_export]
        errors: list[str] = []
        if extra:  # first, so that a client alias cannot take a fresh entry with it
            errors += self._unexport([e.unexport_arg for e in extra])
        if to_export:
            errors += self._export(to_export)
        if extra:
            self.flush_caches([e.path for e in extra])
        if not (extra or to_export):
            return self._warnings(exports, states)
        after = self.path_states(ctx, exports)
        problems = []
        for st in after.values():
            problems += _problems(self._missing(st), st)
        if problems:
            detail = f": {one_line(' '.join(errors))}" if errors else ""
            raise ApplyError(f"exportfs left {len(problems)} entr{'y' if len(problems) == 1 else 'ies'} "
                             f"not as registered (first: {problems[0]}){detail}")
        return self._warnings(exports, after)

    def _export(self, entries: list[DesiredEntry]) -> list[str]:
        if self.batch and not self._ns_broken and len(group_by_options(entries)) > 1:
            from .knfsd_batch import NoNamespace, export_batch

            try:
                return export_batch(self._run, self._exe() or self.exportfs, entries,
                                    self.runtime_dir, self.etc_exports, self.etc_exports_d)
            except NoNamespace:
                self._ns_broken = True
        return self._run_each(export_argvs(self._exe() or self.exportfs, entries, self.arg_limit))

    def _unexport(self, args: list[str]) -> list[str]:
        return self._run_each(unexport_argvs(self._exe() or self.exportfs, args, self.arg_limit))

    def _run_each(self, argvs: Sequence[list[str]]) -> list[str]:
        """Run each exportfs command line; the stderr of each that failed or complained."""
        errors = []
        for argv in argvs:
            rc, err = self._run(argv)
            if rc != 0 or err.strip():  # exportfs may say why with exit code 0
                errors.append(err)
        return errors

    def withdraw_stray(self, ctx: VolumeContext, exports: Sequence[Export]) -> int:
        """knfsd reports no strays: etab is keyed by path, and an export the registry dropped
        is withdrawn by its path when it is removed (a failed exportfs -u fails the remove)."""
        return 0

    def withdraw(self, ctx: VolumeContext, exports: Sequence[Export]) -> None:
        """Unexport each export's directory for every client etab lists it for."""
        by_path = index_by_path(self._etab())
        dirs = [export_dir(ctx.mountpoint, exp) for exp in exports]
        args = [e.unexport_arg for d in dirs for e in by_path.get(d, [])]
        if not args:
            return
        errors = self._unexport(args)
        self.flush_caches(dirs)
        left = index_by_path(self._etab())
        still = [e.unexport_arg for d in dirs for e in left.get(d, [])]
        if still:
            raise ApplyError(f"exportfs -u left {len(still)} entr{'y' if len(still) == 1 else 'ies'} "
                             f"exported (first: {still[0]}): {one_line(' '.join(errors))}")

    def flush_caches(self, dirs: Sequence[str] = ()) -> bool:
        """Flush the kernel's export caches, re-flushing while nfsd.export still lists one of
        `dirs` (knfsd_kernel.flush_caches); False without nfsd."""
        from .knfsd_kernel import flush_caches

        return flush_caches(self.proc_rpc, dirs, self.flush_checks)

    def after_stop(self, ctx: VolumeContext, unlock_fs: bool, unlock_ip: bool, lease_wait: float) -> list[str]:
        """Release the NLM locks of the volume (its file system, its floating IP) and, when
        asked, ride out the NFSv4 lease time (knfsd_kernel.release_at_stop), so that the file
        system can be unmounted."""
        from .knfsd_kernel import release_at_stop

        return release_at_stop(self.proc_nfsd, ctx.mountpoint, ctx.ip, unlock_fs, unlock_ip, lease_wait)

    # ---- client recovery -----------------------------------------------------------------------
    def recovery_stores(self, ctx: VolumeContext) -> list[RecoveryStore]:
        """knfsd's mountd lists mounted clients in rmtab, and statd the clients the kernel's
        lockd holds NLM locks for: the volume's lines and records move with it (the records
        are notified from the floating IP by ocf:ganesha-ha:notify, recovery/notify.py)."""
        return [self.rmtab, self.nsm]

    def after_restore(self, ctx: VolumeContext, records: int) -> str | None:
        """Nothing to do: mountd reads rmtab when asked, and knfsd's grace is the kernel's."""
        return None
