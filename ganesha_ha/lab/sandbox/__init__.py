"""A sandboxed, real Pacemaker cluster on one machine: corosync + pacemakerd per node.

Modules: conf.py renders corosync.conf and the first CIB (pure); node.py is one node seen
from outside (its files, its processes, running a tool inside it); cluster.py is the
cluster (`SandboxCluster`: start, stop, queries, faults); init.py is the program each
node runs as its init, inside its namespaces.

Each node is an "init" process (init.py) started under
``unshare -m -u`` in its own network namespace.  The init makes its mount namespace
private, mounts a fresh tmpfs on ``/run`` and ``/dev/shm``, bind-mounts per-node
directories over ``/var/lib/pacemaker``, ``/var/lib/corosync``, ``/var/log/pacemaker``,
``/var/log/corosync`` and ``/etc/corosync`` (plus any extra binds), starts ``corosync -f``,
waits for its IPC, starts ``pacemakerd`` with a clean environment (as under systemd),
and then supervises: it is a child subreaper, stops corosync after pacemakerd ends and
ends any leftover descendants before it exits.

Single node: the node gets an anonymous network namespace (``unshare -n``) and runs
corosync on 127.0.0.1.  Several nodes: every node gets a named network namespace
``gha-<tag>-<node>`` with an ``eth0`` plugged into a bridge that lives in a switch namespace
``gha-<tag>-sw`` (netns.LabNet, the lab's one network builder); addresses (10.213.0.<i>/24 by default) exist only inside those
namespaces, so no packet ever leaves the sandbox.

Facts measured on Debian 12 (pacemaker 2.1.5, corosync 3.1.7):

* A pre-written CIB with ``dc-deadtime`` of 2 s, ``stonith-enabled=false`` and *no*
  ``crm_feature_set`` brings nodes online in about 5 s instead of ~23 s.  A CIB naming a
  newer feature set than the running one makes 2.1.5 discard updates and its controller
  exit.
* libqb IPC sockets are abstract, hence per network namespace: every cluster tool must run
  inside the node (``ClusterNode.run`` does this with nsenter on namespace fds we hold).
* crmsh writes outside the sandbox (/var/log/crmsh, ~/.cache/crm); use cibadmin and
  crm_resource instead.

The parent keeps an open fd on each node's mount, network and UTS namespace.  That is
what ``ClusterNode.run`` enters, and it pins the namespace identity: "the processes of a
node" are exactly those whose mount namespace is that one (plus the init's descendants),
which is how ``kill_node`` and ``stop`` end them, by PID, without ever matching names.
"""
from __future__ import annotations

import grp
import pwd
from pathlib import Path
from typing import Mapping


CLEAN_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


class ClusterError(RuntimeError):
    pass


def available() -> bool:
    """True if corosync, pacemakerd, nsenter and unshare are installed."""
    return all(Path(p).exists() for p in ("/usr/sbin/corosync", "/usr/sbin/pacemakerd",
                                          "/usr/bin/nsenter", "/usr/bin/unshare"))


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {"PATH": CLEAN_PATH, "LC_ALL": "C"}
    if extra:
        env.update(extra)
    return env


def ha_ids() -> tuple[int, int]:
    return pwd.getpwnam("hacluster").pw_uid, grp.getgrnam("haclient").gr_gid
