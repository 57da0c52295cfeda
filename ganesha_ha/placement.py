"""Where a volume belongs when a module one of its exports needs is missing on this node:
on another node that has every module the volume needs, or here without that export.

Why: an FSAL module missing here (Ganesha's `libfsal<name>.so`, backends/ganesha_plugins.py)
is a lack of this node, and the agent's OCF_ERR_INSTALLED moves the volume to a node that has
it. But Pacemaker keeps a volume off every node that answered 5: with the module missing on
every node, one export took its whole volume down everywhere. The blast-radius rule forbids
that (README "Exports that meet another volume's on one node": one export that cannot go live
must not take its volume down). So each node publishes the modules it can load (a private
attrd node attribute, node_attrs.py, at its start, probe and validate-all), and when an
export's module is missing here the others' are read (one attrd query; never while every
module is here, so a monitor of a healthy volume asks nobody) and:

- another node that published has every module of every export of the volume: the volume
  moves (the failures stay ModuleMissingError, OCF_ERR_INSTALLED), the reason names the node;
- no node has every module (missing everywhere, or spread so that none has all), or Pacemaker
  may not start the volume on those that have (pacemaker_nodes.py: standby, offline, a ban): the
  exports whose modules are missing here are left out (InstalledNowhereError: start 0 with a
  warning, monitor OCF_DEGRADED, as an export the server refuses) and the others served here.

A node that never published (its agent has not run since its Pacemaker started: every node
publishes at its first probe) counts as having no module, and so does one whose value cannot
be read: the volume is never moved away on a guess. Without a cluster (pacemaker-attrd does
not answer) no other node is known, and the exports are left out.

Loop-free: a node answers "move" only while another node has every module the volume needs,
and on that node nothing is missing. So a volume never bounces from node to node, each
answering 5, until it is banned everywhere (what the old answer did when every node lacked
something). A node in standby keeps its attributes and a ban is in the CIB, not in attrd: so
a move is answered only towards a node the scheduler may start the volume on
(pacemaker_nodes.py); when it cannot be asked, the export is left out (the cautious side).

Pure (the glue `place` only asks the backend what it was given).
"""
from __future__ import annotations

from .errors import InstalledNowhereError, ModuleMissingError, NotInstalledError
from .execute import ExportFailure

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Mapping, Sequence

    from .backends import Backend
    from .model import Export


def capable(needs: Iterable[frozenset[str]], others: Mapping[str, frozenset[str] | None]) -> list[str]:
    """The nodes of `others` (node -> the modules it published; None: unreadable) that have
    every module of `needs` (one set per export of the volume), sorted. Pure."""
    wanted = frozenset().union(*needs)
    return sorted(node for node, have in others.items() if have is not None and wanted <= have)


def recast(failures: Sequence[ExportFailure], needs: Sequence[frozenset[str]],
           others: Mapping[str, frozenset[str] | None] | None,
           usable: Collection[str] | None = None) -> list[ExportFailure]:
    """`failures` with each ModuleMissingError decided (module docstring): kept, naming the
    nodes that have every module the volume needs, when `capable` finds one that is `usable`
    (where the cluster may start the volume; None: every node); otherwise an
    InstalledNowhereError of the same export (left out), saying why no node serves it. `needs`:
    each export of the volume's modules; `others`: what the other nodes published (None: no
    cluster). Other failures are returned as they are. Pure."""
    if not any(isinstance(f.error, ModuleMissingError) for f in failures):
        return list(failures)
    known = dict(others or {})
    able = capable(needs, known)
    nodes = [n for n in able if usable is None or n in usable]
    out = []
    for f in failures:
        err = f.error
        if not isinstance(err, ModuleMissingError):
            out.append(f)
            continue
        if nodes:
            # the node first, the package after: Pacemaker keeps 128 characters of an exit reason
            here = "is not installed here" if err.package else "cannot be loaded here"
            new: ModuleMissingError | InstalledNowhereError = ModuleMissingError(
                err.module, f"FSAL {err.module} {here}, {_names(nodes)} {'has' if len(nodes) == 1 else 'have'} every "
                            f"FSAL the volume needs{f' ({err.package})' if err.package else ''}", err.detail,
                err.package, err.who)
        else:
            why = (f"is missing here; {_names(able)} {'has' if len(able) == 1 else 'have'} every FSAL the volume "
                   "needs, but Pacemaker may not start the volume there (standby, offline or banned)" if able else
                   nowhere(err.module, err.package, needs, known))
            here = f"; here {err.detail}" if err.detail else ""
            new = InstalledNowhereError(f"FSAL {err.module} {why}: left out{here}{err.who}", err.module)
        out.append(ExportFailure(f.export, f.action, new, f.server))
    return out


def nowhere(module: str, package: str, needs: Sequence[frozenset[str]],
            known: Mapping[str, frozenset[str] | None]) -> str:
    """Why no node serves an export needing `module` (missing here), the package in it: who
    lacks the module, or which node has it but not every module the volume needs, or that no
    other node published its modules. Pure."""
    verb = "installed" if package else "loadable"
    pkg = f"; {package}" if package else ""
    holders = sorted(n for n, have in known.items() if have is not None and module in have)
    if holders:
        wanted = ", ".join(sorted(frozenset().union(*needs)))
        return (f"is missing here and {_names(holders)}, which {'has' if len(holders) == 1 else 'have'} it, "
                f"{'lacks' if len(holders) == 1 else 'lack'} another FSAL the volume needs ({wanted}{pkg})")
    if not known:
        return f"is missing here and no other node published its FSALs{f' ({package})' if package else ''}"
    return f"is {verb} on no node ({_names(sorted(known))} {'lacks' if len(known) == 1 else 'lack'} it too{pkg})"


def _names(nodes: Sequence[str], most: int = 3) -> str:
    shown = ", ".join(nodes[:most])
    return shown + (f" and {len(nodes) - most} more" if len(nodes) > most else "")


def place(backend: Backend, exports: Sequence[Export], failures: Sequence[ExportFailure]) -> list[ExportFailure]:
    """`recast` with what `backend` says: each export's node-local needs (Backend.needs), what
    the other nodes published (Backend.other_nodes_have, one attrd query) and, when some node
    has every module, whether the cluster may start the volume there (Backend.may_run: one
    crm_simulate). Asks nothing when no failure is a module missing here."""
    if not any(isinstance(f.error, ModuleMissingError) for f in failures):
        return list(failures)
    needs = [backend.needs(e) for e in exports]
    others = backend.other_nodes_have()
    able = capable(needs, others or {})
    return recast(failures, needs, others, backend.may_run(able) if able else None)


def missing_here(backend: Backend, exports: Sequence[Export], among: Sequence[Export] | None = None
                 ) -> list[ExportFailure]:
    """The exports of `among` (default: all of `exports`, the volume's) that lack a module
    on this node (Backend.check_installed_for), each decided by `place` against the whole
    volume's needs: what a start would answer for them, for callers that only report it
    (validate-all, `volume status`). [] when nothing is missing here (nobody is asked)."""
    failed = []
    for exp in exports if among is None else among:
        try:
            backend.check_installed_for(exp)
        except NotInstalledError as exc:
            failed.append(ExportFailure(exp, "apply", exc, backend.name))
    return place(backend, exports, failed)
