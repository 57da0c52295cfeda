"""The cluster lab's shape for N nodes: node names, which volume prefers which node, each
volume's Export_Id range, and the capacity that spreads a lost node's volumes (pure).

Two nodes keep the seed's scenario: ``vol1`` on node-a, ``vol2`` on node-b. From three
nodes on, every node is preferred by two volumes (``vol1``, ``vol2`` by node-a, ``vol3``,
``vol4`` by node-b, ...), and Pacemaker is told, with utilization, that a node holds at
most `capacity(n)` = 3 volumes (Pacemaker Explained, "Utilization and Placement
Strategy": a node whose remaining capacity is less than a resource's utilization cannot
run it; with ``placement-strategy=balanced`` the node with the most free capacity is
chosen first). With every node holding its own two volumes, each survivor has room for
exactly one more, so the two volumes of a lost node *must* land on different survivors;
the cluster's own CIB and crm_mon say so (the lab records both).

Export_Ids are 16-bit and shared by every volume a node serves (Ganesha's
``export_id`` is a uint16_t, include/export_mgr.h); each volume gets its own block
of `ID_BLOCK` ids, so any set of volumes can meet on one node.
"""
from __future__ import annotations

MAX_NODES = 9          # LabNet: nodes are .1-.9 of the lab's /24, the client is .10
CAPACITY = 3           # volumes per node from three nodes on (see the module doc)
ID_BLOCK = 1000        # Export_Ids per volume: vol k uses k*1000 .. k*1000+999
UTILIZATION = "volumes"   # the utilization attribute's name: one unit per volume


def node_names(n: int) -> tuple[str, ...]:
    """("node-a", "node-b", ...) for `n` nodes, 2 <= n <= MAX_NODES; ValueError otherwise."""
    if not 2 <= n <= MAX_NODES:
        raise ValueError(f"the cluster lab runs 2 to {MAX_NODES} nodes, not {n}")
    return tuple(f"node-{chr(ord('a') + i)}" for i in range(n))


def volume_plan(n: int) -> tuple[tuple[str, str], ...]:
    """((volume, preferred node), ...): one per node for two nodes, two per node from three."""
    nodes = node_names(n)
    per_node = 1 if n == 2 else 2
    return tuple((f"vol{i * per_node + j + 1}", node) for i, node in enumerate(nodes)
                 for j in range(per_node))


def capacity(n: int) -> int | None:
    """Volumes a node may hold (its utilization capacity), or None: no limit (two nodes,
    where the survivor must take everything)."""
    node_names(n)
    return None if n == 2 else CAPACITY


def id_range(k: int) -> tuple[int, int]:
    """The Export_Id range of the `k`-th volume (from 1): disjoint from every other's."""
    lo = k * ID_BLOCK
    if not 1 <= k or lo + ID_BLOCK - 1 > 65535:
        raise ValueError(f"no Export_Id block for volume {k}")
    return lo, lo + ID_BLOCK - 1


def loss_detect_s(n: int, token_ms: int = 1000) -> float:
    """Seconds corosync needs to declare a silent node of an `n`-node cluster lost: its
    real token timeout (corosync.conf(5): ``token + (nodes - 2) * token_coefficient``, the
    coefficient 650 ms by default, from three nodes on) plus ``consensus`` (1.2 × that).
    `token_ms` is the sandbox's ``token`` (sandbox/conf.py). 2.2 s for two nodes, 12.2 s for nine."""
    token = token_ms + (650 * (n - 2) if n >= 3 else 0)
    return round(2.2 * token / 1000, 2)
