"""The package's import graph: no cycle, and no import pointing up a layer.

Layers, bottom to top (a module may import its own layer and the ones below it)::

    errors record textfmt linux linux_net   the vocabulary: exceptions, value records, libc,
    lazysite servers textcheck deadline     /proc/net, the table of servers, the text rule, an
                                            agent action's time budget
    model clientspec access fsal            pure model (exports, their client specs, exports(5)
    fsal_schema plan idranges context       precedence, FSALs and their schemas, change steps, id
    nfspath classic fsutil settings ocf     sets, the volume as backends see it, nfs-utils paths,
    description                             the classic agent parameters), files on the volume,
                                            config, OCF protocol, descriptions of exports
    registry registry_migrations backends   on-volume state (and the reading of older registries),
    recovery nodestate neighbours           the servers, client-recovery stores, node-local marks,
    node_attrs converge                     the other volumes here,
    formats                                 facts nodes publish for each other (attrd), a
                                            registry brought to a description, the forms exports
                                            are described in (exports(5), EXPORT blocks, the CIB)
    volume volume_setup export_edits        the one place that combines them (volume_setup: init
    transaction execute                     and set-range), and the executor of its plan steps
    cli cli_args agent agent_classic        entry points (cli_args: the command line's grammar;
    notify_agent install transfer           transfer: import, export apply/dump; agent_classic:
                                            the agent's exportfs drop-in mode)
    lab                                     the demo and proof (drives the entry points)

Every import counts, also one made inside a function (the agent imports lazily to stay
cheap) or under TYPE_CHECKING: a lazy import is still a dependency. A module that no layer
names fails the test, so a new module is placed on purpose. The checker is run on small
synthetic packages too, so that a test which could never fail would show.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"__init__", "errors", "record", "textfmt", "linux", "linux_net", "lazysite", "servers", "textcheck",
               "deadline"}),
    frozenset({"model", "clientspec", "access", "fsal", "fsal_schema", "plan", "idranges", "context", "nfspath", "classic",
               "fsutil", "settings", "ocf", "description"}),
    frozenset({"registry", "registry_migrations", "backends", "recovery", "nodestate", "neighbours", "node_attrs",
               "pacemaker_nodes",
               "converge", "formats"}),
    frozenset({"volume", "volume_setup", "export_edits", "transaction", "execute", "placement"}),
    frozenset({"cli", "cli_args", "agent", "agent_params", "agent_classic", "notify_agent", "install", "transfer"}),
    frozenset({"lab"}),
    frozenset({"__main__"}),  # the console script: `lab` to the lab, the rest to cli
)


def modules(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of `package` under `root`."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of the package that module `name` (file `path`) imports, anywhere in it.

    ``from X import y`` counts as importing ``X.y`` when that is a module, else ``X``.
    """
    is_pkg = path.name == "__init__.py"
    here = name.split(".") if is_pkg else name.split(".")[:-1]
    out: set[str] = set()

    def add(target: str) -> None:
        while target and target not in known:  # a name inside a module: the module
            target = target.rpartition(".")[0]
        if target and target != name:
            out.add(target)

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - (node.level - 1)] if node.level > 1 else here
                prefix = ".".join([*base, *(node.module.split(".") if node.module else [])])
            else:
                prefix = node.module or ""
            for alias in node.names:
                full = f"{prefix}.{alias.name}"
                add(full if full in known else prefix)
    return out


def graph(root: Path, package: str) -> dict[str, set[str]]:
    mods = modules(root, package)
    known = set(mods)
    return {name: imports_of(name, path, known) for name, path in mods.items()}


def layer_of(module: str, package: str, layers: tuple[frozenset[str], ...]) -> int | None:
    rest = module[len(package) + 1:] if module != package else "__init__"
    head = rest.split(".")[0]
    return next((i for i, names in enumerate(layers) if head in names), None)


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return sorted(found)


def problems(root: Path, package: str, layers: tuple[frozenset[str], ...] = LAYERS) -> list[str]:
    """What is wrong with `package`'s import graph, one line each (empty: nothing)."""
    g = graph(root, package)
    out = [f"{m}: in no layer (add it to LAYERS)" for m in sorted(g)
           if layer_of(m, package, layers) is None]
    for a in sorted(g):
        la = layer_of(a, package, layers)
        for b in sorted(g[a]):
            lb = layer_of(b, package, layers)
            if la is not None and lb is not None and lb > la:
                out.append(f"{a} imports {b}, a layer above it")
    out += ["import cycle: " + " <-> ".join(c) for c in cycles(g)]
    return out


def test_ganesha_ha_has_no_cycle_and_no_upward_import():
    assert problems(ROOT, "ganesha_ha") == []


def test_the_graph_is_read_whole():
    """A parser that saw no imports would find no problem: the real graph has its edges."""
    g = graph(ROOT, "ganesha_ha")
    assert "ganesha_ha.errors" in g["ganesha_ha.fsutil"]             # from .errors import ...
    assert "ganesha_ha.model" in g["ganesha_ha.registry"]
    assert sum(map(len, g.values())) > 60


# ---- the checker itself, on synthetic packages ---------------------------------------------

def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in {"pkg/__init__.py": "", **files}.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return tmp_path


CLEAN = {
    "pkg/errors.py": "import os\n",
    "pkg/model.py": "from .errors import Boom\n",
    "pkg/volume.py": "from . import model\nfrom .backends import knfsd\n",
    "pkg/backends/__init__.py": "",
    "pkg/backends/knfsd.py": "from ..errors import Boom\nfrom ..model import Export\n",
    "pkg/cli.py": "def main():\n    import pkg.volume\n",
    "pkg/lab/__init__.py": "",
    "pkg/lab/cli.py": "from . import report\nfrom ..volume import Volume\n",
    "pkg/lab/report.py": "from ..errors import Boom\n",
}


def test_checker_passes_a_clean_package(tmp_path):
    assert problems(_package(tmp_path, CLEAN), "pkg") == []


@pytest.mark.parametrize("where,text,expect", [
    ("pkg/errors.py", "from .volume import Volume\n", "pkg.errors imports pkg.volume, a layer above it"),
    ("pkg/model.py", "def f():\n    from pkg.lab import report\n",
     "pkg.model imports pkg.lab.report, a layer above it"),
    ("pkg/backends/knfsd.py", "if False:\n    from ..cli import main\n",
     "pkg.backends.knfsd imports pkg.cli, a layer above it"),
    ("pkg/lab/report.py", "from .cli import run\n", "import cycle: pkg.lab.cli <-> pkg.lab.report"),
    ("pkg/lab/report.py", "from . import cli\n", "import cycle: pkg.lab.cli <-> pkg.lab.report"),
    ("pkg/stray.py", "", "pkg.stray: in no layer (add it to LAYERS)"),
])
def test_checker_catches_an_injected_bad_import(tmp_path, where, text, expect):
    files = dict(CLEAN)
    files[where] = files.get(where, "") + text
    found = problems(_package(tmp_path, files), "pkg")
    assert expect in found, found


if __name__ == "__main__":  # a quick look at the graph: python tests/unit/test_layers.py
    for line in problems(ROOT, "ganesha_ha") or ["ok"]:
        print(line)
    sys.exit(0)
