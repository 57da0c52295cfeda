"""Where Pacemaker may start a resource now, as its scheduler sees it (`crm_simulate -L -s`).

Why: a node's published facts (node_attrs.py) stay while it is in standby, and a ban or a
location constraint is in the CIB, not in attrd. Moving a volume (OCF_ERR_INSTALLED, which
keeps it off this node) to a node that has what is missing here but where Pacemaker will not
start it would stop the volume everywhere (placement.py). One `crm_simulate -L -s
--output-as=xml` (~45 ms, Pacemaker 2.1.5) gives both halves: each node's state (online,
standby, maintenance, unclean, shutting down, pending) and the resource's allocation score on
each node (-INFINITY for a ban, a constraint, a hard error there). Asked only when another
node has what is missing here, never in a monitor of a healthy volume.
"""
from __future__ import annotations

import subprocess

CRM_SIMULATE = "crm_simulate"
TIMEOUT_S = 5.0
_BLOCKED = ("standby", "maintenance", "unclean", "shutdown", "pending")


def runnable(resource: str, timeout: float = TIMEOUT_S) -> set[str] | None:
    """The nodes where Pacemaker may start `resource` (a primitive's id; a clone instance's
    `:N` is dropped) now; None when the scheduler cannot be asked (no cluster, crm_simulate
    missing, failing or not answering within `timeout` s, an answer that cannot be read)."""
    try:
        cp = subprocess.run([CRM_SIMULATE, "-L", "-s", "--output-as=xml"], stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if cp.returncode != 0:
        return None
    return parse_simulate(cp.stdout, resource.split(":")[0])


def parse_simulate(text: str, resource: str) -> set[str] | None:
    """The nodes of crm_simulate's XML (`--output-as=xml`: cluster_status/nodes/node with
    online, standby, maintenance, unclean, shutdown, pending; allocations/node_weight with
    function, id, node, score) that are online, in none of those states, and whose score for
    `resource` is not -INFINITY (for a member of a group: its and its group's group
    assignment scores; a node without a score counts by its state); None for text that is
    not such a document. Pure."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return None
    nodes = root.findall("./cluster_status/nodes/node")
    if not nodes:
        return None
    up = {n.get("name", "") for n in nodes
          if n.get("online") == "true" and not any(n.get(flag) == "true" for flag in _BLOCKED)}
    group = next((g.get("id") for g in root.findall("./cluster_status/resources/group")
                  if any(r.get("id") == resource for r in g.findall("resource"))), None)
    weights = root.findall("./allocations/node_weight")
    if group is None:
        barred = {w.get("node", "") for w in weights if w.get("id") == resource and _never(w)}
    else:
        # a group member's own score (pcmk__primitive_assign) is -INFINITY on every node but
        # the one its group is placed on (colocated with the member before it: measured, 2.1.5);
        # the group's assignment scores carry the group's and the member's own constraints
        barred = {w.get("node", "") for w in weights if w.get("id") in (resource, group)
                  and w.get("function") == "pcmk__group_assign" and _never(w)}
    return up - barred - {""}


def _never(weight) -> bool:
    return weight.get("score", "").upper() == "-INFINITY"
