"""Facts one node publishes for the others: transient Pacemaker node attributes (attrd).

Why: some checks compare nodes (every node of a volume must present the same NFSv4 server
scope, or NFSv4.1+ clients lose their state on a move), and a node can read only its own
configuration. Each node publishes its value with `attrd_updater -p -n <name> -U <value>`
(private: held by pacemaker-attrd on every node, never written to the CIB, gone when the
node leaves the cluster) and reads everyone's with `attrd_updater -Q -A -n <name>`.
Pacemaker 2.1.5 (Debian 12's) answers that query with the *local* node's value only when
`OCF_RESKEY_CRM_meta_on_node` is set (lib/common/ipc_attrd.c `pcmk__attrd_api_query` puts
the node that `pcmk__node_attr_target` finds in the environment into the request; fixed
upstream by 160a6afc82, "Regression in 2.1.5"), and the executor sets it for every agent
action: so the query runs without the resource's CRM_meta variables.
Without a cluster (attrd_updater missing, or no pacemaker-attrd to talk to: the CLI on a
node outside the cluster, the tests) both answer None and the caller treats the others as
unknown. Each is one short-lived process (~10 ms), run at once (publish_and_read); the agent
runs them in validate-all, start and probes, and in a monitor only when an FSAL module an
export needs is missing here (placement.py reads what the other nodes can load then).
"""
from __future__ import annotations

import os
import re
import subprocess

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from collections.abc import Iterable

ATTRD_UPDATER = "attrd_updater"
_LINE = re.compile(r'name="(?P<name>[^"]*)" host="(?P<host>[^"]*)" value="(?P<value>.*)"')
TIMEOUT_S = 5.0


def publishable(value: str) -> bool:
    """A value the query output can give back unchanged: printable, one line, no `"`."""
    return value.isprintable() and '"' not in value and len(value) <= 1024


def publish_and_read(name: str, value: str, timeout: float = TIMEOUT_S,
                     also: dict[str, str] | None = None) -> tuple[bool, dict[str, str] | None]:
    """Set this node's `name` to `value` and read every node's `name`, the two attrd_updater
    processes run at once (one round trip to pacemaker-attrd instead of two, ~10 ms of a start
    or a probe): the query does not wait for the publish because what it answers for this node
    is not what a caller compares (it reads the others'; another node publishing meanwhile is
    the same race either way). `also` (name -> value) is published at the same time (not
    read; a value that is not `publishable` is left out). Returns (published: False when there
    is no cluster to tell or the value cannot be published, `publishable`; every node's
    values: host -> value of every node that published it, {} when nobody did, None without an
    answer), each answer as each process alone would give it."""
    if not publishable(value):
        return False, None
    query = _spawn([ATTRD_UPDATER, "-Q", "-A", "-n", name], query_env(dict(os.environ)))
    update = _spawn([ATTRD_UPDATER, "-p", "-n", name, "-U", value], None)
    more = [_spawn([ATTRD_UPDATER, "-p", "-n", n, "-U", v], None) for n, v in (also or {}).items() if publishable(v)]
    published = _finish(update, timeout)
    for proc in more:
        _finish(proc, timeout)
    answer = _finish(query, timeout)
    return published is not None and published[0] == 0, None if answer is None else _query_answer(answer, name)


def publish(name: str, value: str, timeout: float = TIMEOUT_S) -> bool:
    """Set this node's `name` to `value` (one attrd_updater); False when there is no cluster
    to tell or the value is not `publishable`."""
    if not publishable(value):
        return False
    done = _finish(_spawn([ATTRD_UPDATER, "-p", "-n", name, "-U", value], None), timeout)
    return done is not None and done[0] == 0


def _spawn(argv: list[str], env: dict[str, str] | None) -> subprocess.Popen[str] | None:
    """attrd_updater started with its output captured; None when it cannot be (not installed)."""
    try:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env)
    except OSError:
        return None


def _finish(proc: subprocess.Popen[str] | None, timeout: float) -> tuple[int, str, str] | None:
    """(exit status, stdout, stderr) of a `_spawn`ed process; None when there was none or it
    did not end within `timeout` s (it is killed then, as subprocess.run does)."""
    if proc is None:
        return None
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return None
    return proc.returncode, out, err


def _query_answer(answer: tuple[int, str, str], name: str) -> dict[str, str] | None:
    """host -> value from the query's (exit status, stdout, stderr); None for no cluster."""
    returncode, out, err = answer
    if returncode != 0:
        # pacemaker-attrd answers "could not query value ... No such device or address" (6) for
        # an attribute nobody set: that is an empty answer, not "no cluster"
        return {} if "No such" in err or "not found" in err.lower() else None
    return parse_query(out, name)


def parse_query(text: str, name: str) -> dict[str, str]:
    """host -> value from `attrd_updater -Q -A -n name` output (lines
    `name="N" host="H" value="V"`); an empty value (a deleted attribute) is left out. Pure."""
    out = {}
    for line in text.splitlines():
        m = _LINE.fullmatch(line.strip())
        if m and m.group("name") == name and m.group("value"):
            out[m.group("host")] = m.group("value")
    return out


NO_NAMES = "-"    # the published value of an empty set of names (attrd drops an empty value)
_NAME = re.compile(r"[A-Z0-9_]+")


def encode_names(names: Iterable[str]) -> str:
    """A set of names as one published value: upper case, sorted, comma-separated (`-` for
    none; each node's FSAL modules, placement.py). Pure."""
    return ",".join(sorted({n.upper() for n in names})) or NO_NAMES


def decode_names(value: str) -> frozenset[str] | None:
    """The names of a value `encode_names` made; None for a value that is not one (a later
    version's, or garbage). Pure."""
    if value == NO_NAMES:
        return frozenset()
    names = value.split(",")
    if not all(_NAME.fullmatch(n) for n in names):
        return None
    return frozenset(names)


def local_node() -> str | None:
    """This node's name as Pacemaker knows it, when running as its resource agent (the
    executor's `OCF_RESKEY_CRM_meta_on_node`); None otherwise."""
    return os.environ.get("OCF_RESKEY_CRM_meta_on_node") or None


def query_env(environ: dict[str, str]) -> dict[str, str]:
    """The environment for a query of every node: without the resource's meta variables,
    from which Pacemaker 2.1.5's attrd_updater takes a node to narrow `-A` down to (module
    docstring). Pure."""
    return {k: v for k, v in environ.items() if not k.startswith(("OCF_RESKEY_CRM_meta_", "CRM_meta_"))}
