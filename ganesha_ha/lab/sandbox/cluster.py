"""The sandbox cluster: a real Pacemaker cluster of N nodes on this machine, in namespaces
(see the package doc). Start and stop, the cluster's view (crm_mon, cibadmin, crm_resource),
and faults: kill a node, stop it cleanly, cut its link."""
from __future__ import annotations

import atexit
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from ... import linux
from ...linux import pid_alive
from ..netns import NETNS_DIR, LabNet, netns_exists
from ..procs import wait_until

from . import ClusterError, clean_env, ha_ids
from .conf import DEFAULT_CRM_CONFIG, cib_xml, corosync_conf
from .node import NODE_DIRS, PCMK_SUBDIRS, ClusterNode

DEFAULT_SUBNET = "10.213.0"


class SandboxCluster:
    """A real Pacemaker cluster of `nodes` on this machine, sandboxed in namespaces.

    ``two_node_net`` (default: more than one node) puts every node in a named network
    namespace ``gha-<tag>-<node>`` joined by a bridge; otherwise the single node gets an
    anonymous network namespace and runs on 127.0.0.1.  ``env`` is extra environment
    for pacemakerd (hence for the agents) on every node, ``node_env`` per node; ``binds``
    maps a node name to extra ``(src, dst)`` bind mounts (``dst`` must exist, except under
    ``/run`` or ``/dev/shm``, which are node-private tmpfs).  ``netns`` puts the nodes
    in network namespaces the caller made and owns instead, ``{node: (netns, address)}``
    (the failover lab does, so that its client and floating IPs share the nodes' wire).
    """

    def __init__(self, workdir: Path, nodes: Sequence[str] = ("n1",), *,
                 two_node_net: bool | None = None, tag: str | None = None,
                 env: Mapping[str, str] | None = None,
                 node_env: Mapping[str, Mapping[str, str]] | None = None,
                 binds: Mapping[str, Iterable[tuple[os.PathLike | str, os.PathLike | str]]] | None = None,
                 crm_config: Mapping[str, str] | None = None, token_ms: int = 1000,
                 subnet: str = DEFAULT_SUBNET, die_with_parent: bool = True,
                 netns: Mapping[str, tuple[str, str]] | None = None):
        if not nodes or len(set(nodes)) != len(nodes):
            raise ValueError("need distinct node names")
        for n in nodes:
            if not re.fullmatch(r"[a-z][a-z0-9-]{0,9}", n):
                raise ValueError(f"bad node name {n!r} (lowercase, at most 10 characters)")
        if netns is not None and set(netns) != set(nodes):
            raise ValueError("netns must name a namespace and address for every node")
        if two_node_net is None:
            two_node_net = len(nodes) > 1 or netns is not None
        if len(nodes) > 1 and not two_node_net:
            raise ValueError("several nodes need two_node_net=True")
        self.workdir = Path(workdir)
        self.tag = tag or secrets.token_hex(2)
        self.crm_config = {**DEFAULT_CRM_CONFIG, **(crm_config or {})}
        self.token_ms = token_ms
        self.nodes: dict[str, ClusterNode] = {}
        # the cluster's own network, unless the caller gives the nodes theirs (or one node)
        self.net = LabNet(self.tag, subnet=subnet, nodes=tuple(nodes), client_ns=False
                          ) if two_node_net and netns is None else None
        for i, name in enumerate(nodes, start=1):
            if netns is not None:
                ns, addr = netns[name]
            elif self.net is not None:
                ns, addr = self.net.ns(name), self.net.addr(name)
            else:
                ns, addr = None, "127.0.0.1"
            node = ClusterNode(
                name=name, nodeid=i, workdir=self.workdir / name, addr=addr, netns=ns,
                binds=[(Path(s), Path(d)) for s, d in (binds or {}).get(name, ())],
                env={**(env or {}), **((node_env or {}).get(name, {}))})
            self.nodes[name] = node
        self.die_with_parent = die_with_parent
        self._atexit = False

    # -- context manager -------------------------------------------------------------
    def __enter__(self) -> "SandboxCluster":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __getitem__(self, name: str) -> ClusterNode:
        return self.nodes[name]

    @property
    def netns_names(self) -> list[str]:
        if self.net is None:
            return []
        return self.net.all_names()

    # -- start -----------------------------------------------------------------------
    def start(self, timeout: float = 60) -> None:
        """Create the network, start every node, wait until all are online with a DC."""
        if not self._atexit:
            atexit.register(self.stop)
            self._atexit = True
        t0 = time.monotonic()
        try:
            if self.net is not None and not self.net.created:
                self.net.create()
            for node in self.nodes.values():
                self._prepare(node)
            for node in self.nodes.values():
                self._launch(node)
            for node in self.nodes.values():
                self._wait_init(node, timeout=max(1.0, timeout - (time.monotonic() - t0)))
            self.wait_online(timeout=max(1.0, timeout - (time.monotonic() - t0)))
        except BaseException:
            try:
                self.stop()
            except ClusterError:
                pass
            raise

    def start_node(self, name: str, timeout: float = 60, wait: bool = True) -> None:
        """(Re)start one node, keeping its CIB and logs; wait until it is online."""
        node = self.nodes[name]
        if node.is_running():
            raise ClusterError(f"node {name} is already running")
        t0 = time.monotonic()
        self._prepare(node)
        self._launch(node)
        self._wait_init(node, timeout)
        if wait:
            self.wait_online(nodes=[name], timeout=max(1.0, timeout - (time.monotonic() - t0)))

    def _prepare(self, node: ClusterNode) -> None:
        uid, gid = ha_ids()
        node.workdir.mkdir(parents=True, exist_ok=True)
        for key in NODE_DIRS:
            node.dir(key).mkdir(exist_ok=True)
        pcmk = node.dir("var-lib-pacemaker")
        os.chown(pcmk, 0, 0)
        os.chmod(pcmk, 0o755)
        for sub in PCMK_SUBDIRS:
            d = pcmk / sub
            d.mkdir(exist_ok=True)
            os.chown(d, uid, gid)
            os.chmod(d, 0o750)
        logdir = node.dir("var-log-pacemaker")
        os.chown(logdir, uid, gid)
        os.chmod(logdir, 0o770)
        (logdir / "bundles").mkdir(exist_ok=True)
        os.chown(logdir / "bundles", uid, gid)
        etc = node.dir("etc-corosync")
        (etc / "uidgid.d").mkdir(exist_ok=True)
        (etc / "corosync.conf").write_text(corosync_conf(
            [(n.name, n.nodeid, n.addr) for n in self.nodes.values()],
            cluster_name=self.crm_config.get("cluster-name", "gha-sandbox"),
            token_ms=self.token_ms))
        cib = pcmk / "cib" / "cib.xml"
        if not cib.exists():        # a restarted node keeps its CIB
            cib.write_text(cib_xml(self.crm_config))
            os.chown(cib, uid, gid)
            os.chmod(cib, 0o600)
        node.status_file.unlink(missing_ok=True)

    def _launch(self, node: ClusterNode) -> None:
        node._close_ns()
        binds = [(str(node.dir(k)), dst) for k, dst in NODE_DIRS.items()]
        binds += [(str(s), str(d)) for s, d in node.binds]
        cfg = {
            "name": node.name,
            "lo_up": node.netns is None,
            "binds": binds,
            "env": node.env,
            "status": str(node.status_file),
            "parent": os.getpid() if self.die_with_parent else None,
        }
        cfg_path = node.workdir / "init.json"
        cfg_path.write_text(json.dumps(cfg, indent=1))
        pkg_root = str(Path(__file__).resolve().parents[2])
        boot = ("import sys; sys.path.insert(0, sys.argv[1]); "
                "from ganesha_ha.lab.sandbox.init import node_init_main; node_init_main(sys.argv[2])")
        inner = ["unshare", "-m", "-u", "--propagation", "private"]
        if node.netns is None:
            inner.insert(1, "-n")
            argv = inner
        else:
            argv = ["nsenter", f"--net={NETNS_DIR / node.netns}", "--", *inner]
        argv += ["--", sys.executable, "-c", boot, pkg_root, str(cfg_path)]
        with open(node.init_log, "ab") as log:
            node.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=clean_env(),
                                         start_new_session=True)
        node.init_pid = node.proc.pid

    def _wait_init(self, node: ClusterNode, timeout: float) -> None:
        def ready() -> bool:
            return node.status_file.exists() or node.proc.poll() is not None

        if not wait_until(ready, timeout, 0.02) or node.proc.poll() is not None:
            raise ClusterError(f"node {node.name}: init failed (rc={node.proc.poll()})\n"
                               f"{node.logs_tail()}")
        st = json.loads(node.status_file.read_text())
        node.corosync_pid = st["corosync"]
        node.pacemakerd_pid = st["pacemakerd"]
        pid = node.proc.pid
        try:
            for k in ("mnt", "net", "uts"):
                node._ns_fds[k] = os.open(f"/proc/{pid}/ns/{k}", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            node._close_ns()
            raise ClusterError(f"node {node.name}: init vanished ({e})\n{node.logs_tail()}")

    # -- queries ---------------------------------------------------------------------
    def running_nodes(self) -> list[ClusterNode]:
        return [n for n in self.nodes.values() if n.is_running()]

    def _via(self, node: str | None) -> ClusterNode:
        if node is not None:
            return self.nodes[node]
        for n in self.running_nodes():
            return n
        raise ClusterError("no node is running")

    def run(self, argv: Sequence[str], *, node: str | None = None, **kw) -> subprocess.CompletedProcess:
        """Run a cluster tool inside `node` (default: the first running node)."""
        return self._via(node).run(argv, **kw)

    def crm_mon_xml(self, node: str | None = None) -> ET.Element | None:
        try:
            cp = self.run(["crm_mon", "--one-shot", "--inactive", "--output-as=xml"], node=node,
                          timeout=20)
        except subprocess.TimeoutExpired:
            return None
        try:
            return ET.fromstring(cp.stdout)
        except ET.ParseError:
            return None

    def crm_mon(self, node: str | None = None) -> str:
        return self.run(["crm_mon", "--one-shot", "--inactive"], node=node, timeout=20).stdout

    def online_nodes(self, node: str | None = None) -> set[str]:
        """Nodes online in `node`'s view, if that view has a DC; else the empty set."""
        root = self.crm_mon_xml(node)
        if root is None:
            return set()
        dc = root.find("./summary/current_dc")
        if dc is None or dc.get("present") != "true":
            return set()
        return {n.get("name") for n in root.findall("./nodes/node") if n.get("online") == "true"}

    def wait_online(self, timeout: float = 60, nodes: Iterable[str] | None = None) -> float:
        """Wait until every running node sees `nodes` (default: all running) online."""
        want = set(nodes) if nodes is not None else {n.name for n in self.running_nodes()}
        t0 = time.monotonic()

        def ok() -> bool:
            views = [n.name for n in self.running_nodes()]
            return bool(views) and all(want <= self.online_nodes(v) for v in views)

        if not wait_until(ok, timeout, 0.25):
            raise ClusterError(f"nodes {sorted(want)} not online after {timeout}s\n"
                               f"{self._diag()}")
        return time.monotonic() - t0

    def cib_query(self, section: str | None = None, *, node: str | None = None) -> str:
        argv = ["cibadmin", "--query"]
        if section:
            argv += ["--scope", section]
        return self.run(argv, node=node, check=True).stdout

    def cibadmin_create(self, section: str, xml: str, *, node: str | None = None) -> None:
        self.run(["cibadmin", "--create", "--scope", section, "--xml-text", xml],
                 node=node, check=True)

    def cibadmin(self, *args: str, node: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        return self.run(["cibadmin", *args], node=node, check=check)

    def crm_resource(self, *args: str, node: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        return self.run(["crm_resource", *args], node=node, check=check)

    def crm_attribute(self, *args: str, node: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        return self.run(["crm_attribute", *args], node=node, check=check)

    def resource_instances(self, rsc: str, node: str | None = None) -> list[tuple[str, list[str]]]:
        """[(role, nodes active on)] for each instance of `rsc` (clones have several)."""
        root = self.crm_mon_xml(node)
        if root is None:
            return []
        return [(r.get("role"), [n.get("name") for n in r.findall("node")])
                for r in root.iter("resource") if r.get("id") == rsc]

    def resource_state(self, rsc: str, node: str | None = None) -> tuple[str | None, list[str]]:
        """(role, nodes it is active on) of primitive `rsc`, as crm_mon shows it."""
        inst = self.resource_instances(rsc, node)
        return inst[0] if inst else (None, [])

    def resource_location(self, rsc: str, node: str | None = None) -> str | None:
        """The node where `rsc` is active now, or None."""
        role, where = self.resource_state(rsc, node)
        return where[0] if where and role not in (None, "Stopped") else None

    def wait_resource(self, rsc: str, node: str | None = None, state: str = "Started",
                      timeout: float = 30, via: str | None = None) -> str | None:
        """Wait until `rsc` has role `state` (on `node` if given); return where it runs.

        ``state="Stopped"`` waits until no instance is active anywhere.  `via` is the node
        whose view is asked (default: the first running node).
        """
        seen: list = [None, None]

        def ok() -> bool:
            try:
                inst = self.resource_instances(rsc, via)
            except (ClusterError, subprocess.TimeoutExpired):
                return False
            seen[1] = inst
            if state == "Stopped":
                return bool(inst) and all(r == "Stopped" and not w for r, w in inst)
            for role, where in inst:
                if role == state and where and (node is None or node in where):
                    seen[0] = node if node is not None else where[0]
                    return True
            return False

        if not wait_until(ok, timeout, 0.2):
            raise ClusterError(f"resource {rsc} not {state}{' on ' + node if node else ''} "
                               f"after {timeout}s (last: {seen[1]})\n{self._diag()}")
        return seen[0]

    def _diag(self) -> str:
        parts = []
        try:
            parts.append(self.crm_mon())
        except Exception as e:  # noqa: BLE001 - diagnostics only
            parts.append(f"(crm_mon failed: {e})")
        for n in self.nodes.values():
            parts.append(n.logs_tail(15))
        return "\n".join(parts)

    # -- faults and stop ------------------------------------------------------------------
    def kill_node(self, name: str) -> None:
        """Node loss: SIGKILL corosync, pacemaker and everything else of the node."""
        node = self.nodes[name]
        node.kill()
        node._close_ns()

    def stop_node(self, name: str, timeout: float = 60) -> None:
        """Clean shutdown: SIGTERM pacemakerd; the node's init then stops corosync."""
        node = self.nodes[name]
        if node.is_running() and node.pacemakerd_pid and pid_alive(node.pacemakerd_pid):
            os.kill(node.pacemakerd_pid, signal.SIGTERM)
        elif node.is_running():
            os.kill(node.proc.pid, signal.SIGTERM)
        if node.proc is not None:
            try:
                node.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        node.kill()     # whatever is left (nothing, after a clean stop)
        node._close_ns()

    def set_link(self, name: str, up: bool) -> None:
        """Cut (up=False) or restore a node's network link: a partition, not a node loss."""
        if self.net is None:
            raise ClusterError("single-node cluster has no network to cut")
        self.net.set_link(name, up)

    def stop(self, graceful: bool = False, timeout: float = 30) -> None:
        """Stop every node (SIGKILL, or clean shutdown if `graceful`), delete namespaces.

        Idempotent; registered with atexit by start().
        """
        errors = []
        if graceful:
            for n in self.running_nodes():
                if n.pacemakerd_pid and pid_alive(n.pacemakerd_pid):
                    os.kill(n.pacemakerd_pid, signal.SIGTERM)
            wait_until(lambda: not self.running_nodes(), timeout, 0.1)
        for node in self.nodes.values():
            try:
                node.kill()
            except ClusterError as e:
                errors.append(str(e))
            node._close_ns()
        if self.net is not None:
            self.net.remove()
            if self.net.created:
                errors.append(f"network namespaces left: {self.net.created}")
        if self._atexit:
            atexit.unregister(self.stop)
            self._atexit = False
        if errors:
            raise ClusterError("; ".join(errors))

    def release(self) -> None:
        """Let the nodes outlive this process (a kept lab): no stop at exit, no fds held.
        Start the cluster with die_with_parent=False for this."""
        if self._atexit:
            atexit.unregister(self.stop)
            self._atexit = False
        for node in self.nodes.values():
            node._close_ns()

    def leftovers(self) -> dict[str, list]:
        """What of this cluster still exists on the host (empty lists after stop())."""
        wd = str(self.workdir.resolve())
        mounts = linux.mount_points()
        return {
            "netns": [n for n in self.netns_names if netns_exists(n)],
            "processes": sorted({p for n in self.nodes.values()
                                 for p in n.processes() | {q for q in n.seen_pids if linux.pid_alive(q)}}),
            "mounts": [m for m in mounts if m.startswith(wd) or
                       any(m == str(NETNS_DIR / ns) for ns in self.netns_names)],
        }
