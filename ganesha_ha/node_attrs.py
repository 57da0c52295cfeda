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
unknown. Each call is one short-lived process (~10 ms); the agent makes them in validate-all,
start and probes only, never in the recurring monitor.
"""
from __future__ import annotations

import os
import re
import subprocess

ATTRD_UPDATER = "attrd_updater"
_LINE = re.compile(r'name="(?P<name>[^"]*)" host="(?P<host>[^"]*)" value="(?P<value>.*)"')
TIMEOUT_S = 5.0


def publishable(value: str) -> bool:
    """A value the query output can give back unchanged: printable, one line, no `"`."""
    return value.isprintable() and '"' not in value and len(value) <= 1024


def publish(name: str, value: str, timeout: float = TIMEOUT_S) -> bool:
    """Set this node's `name` to `value`; False when there is no cluster to tell (or the
    value cannot be published: `publishable`)."""
    if not publishable(value):
        return False
    try:
        cp = subprocess.run([ATTRD_UPDATER, "-p", "-n", name, "-U", value], capture_output=True, text=True,
                            timeout=timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return cp.returncode == 0


def parse_query(text: str, name: str) -> dict[str, str]:
    """host -> value from `attrd_updater -Q -A -n name` output (lines
    `name="N" host="H" value="V"`); an empty value (a deleted attribute) is left out. Pure."""
    out = {}
    for line in text.splitlines():
        m = _LINE.fullmatch(line.strip())
        if m and m.group("name") == name and m.group("value"):
            out[m.group("host")] = m.group("value")
    return out


def local_node() -> str | None:
    """This node's name as Pacemaker knows it, when running as its resource agent (the
    executor's `OCF_RESKEY_CRM_meta_on_node`); None otherwise."""
    return os.environ.get("OCF_RESKEY_CRM_meta_on_node") or None


def query_env(environ: dict[str, str]) -> dict[str, str]:
    """The environment for a query of every node: without the resource's meta variables,
    from which Pacemaker 2.1.5's attrd_updater takes a node to narrow `-A` down to (module
    docstring). Pure."""
    return {k: v for k, v in environ.items() if not k.startswith(("OCF_RESKEY_CRM_meta_", "CRM_meta_"))}


def published(name: str, timeout: float = TIMEOUT_S) -> dict[str, str] | None:
    """host -> value of `name` on every node that published it; None without a cluster."""
    try:
        cp = subprocess.run([ATTRD_UPDATER, "-Q", "-A", "-n", name], capture_output=True, text=True,
                            timeout=timeout, stdin=subprocess.DEVNULL, env=query_env(dict(os.environ)))
    except (OSError, subprocess.TimeoutExpired):
        return None
    if cp.returncode != 0:
        # pacemaker-attrd answers "could not query value ... No such device or address" (6) for
        # an attribute nobody set: that is an empty answer, not "no cluster"
        return {} if "No such" in cp.stderr or "not found" in cp.stderr.lower() else None
    return parse_query(cp.stdout, name)
