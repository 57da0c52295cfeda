"""A sandboxed, real Pacemaker cluster on one machine: corosync + pacemakerd per node.

Each node is an "init" process (this module, run with ``--node-init``) started under
``unshare -m -u`` in its own network namespace.  The init makes its mount namespace
private, mounts a fresh tmpfs on ``/run`` and ``/dev/shm``, bind-mounts per-node
directories over ``/var/lib/pacemaker``, ``/var/lib/corosync``, ``/var/log/pacemaker``,
``/var/log/corosync`` and ``/etc/corosync`` (plus any extra binds), starts ``corosync -f``,
waits for its IPC, starts ``pacemakerd`` with a clean environment (as under systemd),
and then supervises: it is a child subreaper, stops corosync after pacemakerd ends and
ends any leftover descendants before it exits.

Single node: the node gets an anonymous network namespace (``unshare -n``) and runs
corosync on 127.0.0.1.  Several nodes: every node gets a named network namespace
``gha-<tag>-<node>`` with an ``eth0`` plugged into a bridge that lives in a hub namespace
``gha-<tag>-hub``; addresses (10.213.0.<i>/24 by default) exist only inside those
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

import atexit
import grp
import json
import os
import pwd
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from .. import linux
from ..linux import pid_alive
from .netns import NETNS_DIR, LabNet, link_up, netns_exists
from .procs import wait_until

CLEAN_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SUBNET = "10.213.0"
PACEMAKER_SCHEMA_DIR = Path("/usr/share/pacemaker")

# What each node bind-mounts over the real paths, by workdir subdirectory.
_NODE_DIRS = {
    "var-lib-pacemaker": "/var/lib/pacemaker",
    "var-lib-corosync": "/var/lib/corosync",
    "var-log-pacemaker": "/var/log/pacemaker",
    "var-log-corosync": "/var/log/corosync",
    "etc-corosync": "/etc/corosync",
}
_PCMK_SUBDIRS = ("cib", "pengine", "blackbox", "cores")

DEFAULT_CRM_CONFIG = {
    "stonith-enabled": "false",
    "no-quorum-policy": "ignore",
    "dc-deadtime": "2s",
    "cluster-recheck-interval": "15s",
    "cluster-name": "gha-sandbox",
}


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


def latest_schema() -> str:
    """The newest ``pacemaker-X.Y`` schema the installed Pacemaker knows."""
    best = (3, 0)
    for p in PACEMAKER_SCHEMA_DIR.glob("pacemaker-*.rng"):
        m = re.fullmatch(r"pacemaker-(\d+)\.(\d+)\.rng", p.name)
        if m:
            best = max(best, (int(m.group(1)), int(m.group(2))))
    return f"pacemaker-{best[0]}.{best[1]}"


def cib_xml(crm_config: Mapping[str, str]) -> str:
    """A minimal CIB; deliberately without crm_feature_set (see module docstring)."""
    nvpairs = "\n".join(
        f'        <nvpair id="cib-bootstrap-options-{k}" name="{k}" value="{v}"/>'
        for k, v in crm_config.items())
    return (
        f'<cib admin_epoch="0" epoch="1" num_updates="0" validate-with="{latest_schema()}">\n'
        "  <configuration>\n"
        "    <crm_config>\n"
        '      <cluster_property_set id="cib-bootstrap-options">\n'
        f"{nvpairs}\n"
        "      </cluster_property_set>\n"
        "    </crm_config>\n"
        "    <nodes/>\n"
        "    <resources/>\n"
        "    <constraints/>\n"
        "  </configuration>\n"
        "  <status/>\n"
        "</cib>\n")


def corosync_conf(nodes: Sequence[tuple[str, int, str]], *, cluster_name: str = "gha-sandbox",
                  token_ms: int = 1000) -> str:
    """corosync.conf for `nodes` = [(name, nodeid, ring0_addr)], knet, no crypto."""
    quorum = "    provider: corosync_votequorum\n"
    if len(nodes) == 2:
        quorum += "    two_node: 1\n    wait_for_all: 0\n"
    nodelist = "".join(
        "    node {\n"
        f"        name: {name}\n"
        f"        nodeid: {nodeid}\n"
        f"        ring0_addr: {addr}\n"
        "    }\n" for name, nodeid, addr in nodes)
    return (
        "totem {\n"
        "    version: 2\n"
        f"    cluster_name: {cluster_name}\n"
        "    transport: knet\n"
        "    crypto_cipher: none\n"
        "    crypto_hash: none\n"
        f"    token: {token_ms}\n"
        "    join: 50\n"
        "}\n"
        "logging {\n"
        "    to_stderr: no\n"
        "    to_syslog: no\n"
        "    to_logfile: yes\n"
        "    logfile: /var/log/corosync/corosync.log\n"
        "    timestamp: hires\n"
        "    debug: off\n"
        "}\n"
        "uidgid {\n"
        "    uid: hacluster\n"
        "    gid: haclient\n"
        "}\n"
        f"quorum {{\n{quorum}}}\n"
        f"nodelist {{\n{nodelist}}}\n")


def _ha_ids() -> tuple[int, int]:
    return pwd.getpwnam("hacluster").pw_uid, grp.getgrnam("haclient").gr_gid


def _tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


# --------------------------------------------------------------------------------------
# Nodes
# --------------------------------------------------------------------------------------

@dataclass
class ClusterNode:
    name: str
    nodeid: int
    workdir: Path
    addr: str
    netns: str | None = None                      # named netns, None = anonymous (single node)
    binds: list[tuple[Path, Path]] = field(default_factory=list)   # extra (src, dst) binds
    env: dict[str, str] = field(default_factory=dict)              # extra env for pacemakerd
    proc: subprocess.Popen | None = None
    init_pid: int | None = None
    corosync_pid: int | None = None
    pacemakerd_pid: int | None = None
    seen_pids: set[int] = field(default_factory=set, repr=False)   # every PID kill() ended
    _ns_fds: dict[str, int] = field(default_factory=dict, repr=False)

    # -- files --------------------------------------------------------------------
    def dir(self, key: str) -> Path:
        return self.workdir / key

    @property
    def status_file(self) -> Path:
        return self.workdir / "init-status.json"

    @property
    def init_log(self) -> Path:
        return self.workdir / "init.log"

    @property
    def pacemaker_log(self) -> Path:
        return self.dir("var-log-pacemaker") / "pacemaker.log"

    @property
    def corosync_log(self) -> Path:
        return self.dir("var-log-corosync") / "corosync.log"

    def logs_tail(self, n: int = 30) -> str:
        parts = []
        for p in (self.init_log, self.corosync_log, self.pacemaker_log):
            t = _tail(p, n)
            if t:
                parts.append(f"--- {self.name}: {p}\n{t}")
        return "\n".join(parts)

    # -- state --------------------------------------------------------------------
    def is_running(self) -> bool:
        """The init is alive (daemons may still be starting or stopping)."""
        return self.proc is not None and self.proc.poll() is None

    def processes(self) -> set[int]:
        """PIDs of every live process of this node: same mount namespace, or init descendant."""
        fd = self._ns_fds.get("mnt")
        if fd is None:
            return set()
        st = os.fstat(fd)
        me = os.getpid()
        out: set[int] = set()
        for pid in linux.all_pids():
            if pid == me:
                continue
            try:
                s = os.stat(f"/proc/{pid}/ns/mnt")
            except OSError:
                continue
            if s.st_ino == st.st_ino and s.st_dev == st.st_dev:
                out.add(pid)
        if self.is_running():
            out.add(self.proc.pid)
            out |= linux.descendants(self.proc.pid)
        return out

    # -- running commands inside ---------------------------------------------------
    def nsenter_argv(self) -> tuple[list[str], list[int]]:
        if not self._ns_fds:
            raise ClusterError(f"node {self.name} has not been started")
        fds = self._ns_fds
        argv = ["nsenter", f"--mount=/proc/self/fd/{fds['mnt']}",
                f"--net=/proc/self/fd/{fds['net']}", f"--uts=/proc/self/fd/{fds['uts']}", "--"]
        return argv, list(fds.values())

    def run(self, argv: Sequence[str], *, check: bool = False, timeout: float = 60,
            input: str | None = None, env: Mapping[str, str] | None = None,
            capture: bool = True) -> subprocess.CompletedProcess:
        """Run `argv` inside this node's mount, network and UTS namespaces."""
        prefix, fds = self.nsenter_argv()
        cp = subprocess.run(
            [*prefix, *argv], input=input, text=True, timeout=timeout, pass_fds=fds,
            env=clean_env(env), stdin=None if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE if capture else None)
        if check and cp.returncode != 0:
            out = f"{(cp.stderr or '').strip()} {(cp.stdout or '').strip()}".strip()
            raise ClusterError(f"{self.name}: {' '.join(argv)} exited {cp.returncode}: {out[:2000]}")
        return cp

    # -- lifecycle (driven by SandboxCluster) --------------------------------------
    def _close_ns(self) -> None:
        for fd in self._ns_fds.values():
            os.close(fd)
        self._ns_fds = {}

    def kill(self, timeout: float = 10.0) -> None:
        """SIGKILL every process of the node (node loss) and wait until none is left."""
        deadline = time.monotonic() + timeout
        while True:
            pids = self.processes()
            self.seen_pids |= pids
            init = self.proc.pid if self.proc is not None else None
            # children first, so the init (a subreaper) reaps them; then the init.
            for pid in sorted(pids, key=lambda p: p == init):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if self.proc is not None:
                try:
                    self.proc.wait(0.5)
                except subprocess.TimeoutExpired:
                    pass
            if not pids:
                break
            if time.monotonic() > deadline:
                raise ClusterError(f"node {self.name}: processes survive SIGKILL: {sorted(pids)}")
            time.sleep(0.05)
        self._reaped()

    def _reaped(self) -> None:
        if self.proc is not None:
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
            if self.proc.poll() is not None:
                self.proc = None
        self.init_pid = self.corosync_pid = self.pacemakerd_pid = None


# --------------------------------------------------------------------------------------
# The cluster
# --------------------------------------------------------------------------------------

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
        uid, gid = _ha_ids()
        node.workdir.mkdir(parents=True, exist_ok=True)
        for key in _NODE_DIRS:
            node.dir(key).mkdir(exist_ok=True)
        pcmk = node.dir("var-lib-pacemaker")
        os.chown(pcmk, 0, 0)
        os.chmod(pcmk, 0o755)
        for sub in _PCMK_SUBDIRS:
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
        binds = [(str(node.dir(k)), dst) for k, dst in _NODE_DIRS.items()]
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
                "from ganesha_ha.lab.cluster import node_init_main; node_init_main(sys.argv[2])")
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


# --------------------------------------------------------------------------------------
# The node init (runs inside the node's namespaces)
# --------------------------------------------------------------------------------------

def _log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} init[{os.getpid()}]: {msg}", flush=True)


def node_init_main(cfg_path: str) -> None:
    """Entry point of a node's init, already inside its own mount/UTS/network namespaces."""
    cfg = json.loads(Path(cfg_path).read_text())
    linux.set_child_subreaper()
    socket.sethostname(cfg["name"])
    linux.make_mounts_private()
    if cfg["lo_up"]:
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            link_up(ipr, "lo")
    # Copies of the host's netns mounts would pin other namespaces alive: drop them here.
    if linux.is_mountpoint("/run/netns"):
        linux.umount("/run/netns", lazy=True)
    uid, gid = _ha_ids()
    linux.mount("tmpfs", "/run", "tmpfs", 0, "mode=0755")
    for d, mode, owner in (("/run/crm", 0o750, (uid, gid)), ("/run/resource-agents", 0o755, None),
                           ("/run/lock", 0o1777, None), ("/run/pacemaker", 0o770, (uid, gid))):
        os.mkdir(d)
        os.chmod(d, mode)
        if owner:
            os.chown(d, *owner)
    linux.mount("tmpfs", "/dev/shm", "tmpfs", 0, "mode=1777")
    for src, dst in cfg["binds"]:
        if not os.path.exists(dst):
            if dst.startswith(("/run/", "/dev/shm/")):
                if os.path.isdir(src):
                    os.makedirs(dst)
                else:
                    os.makedirs(os.path.dirname(dst), exist_ok=True)
                    open(dst, "a").close()
            else:
                raise FileNotFoundError(f"bind target {dst} does not exist")
        linux.bind_mount(src, dst, recursive=True)

    env = clean_env()
    with open(Path(cfg_path).parent / "corosync.out", "ab") as out:
        coro = subprocess.Popen(["corosync", "-f"], env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT)
    _log(f"corosync pid {coro.pid}")

    def coro_ready() -> bool:
        if coro.poll() is not None:
            return True
        return subprocess.run(["corosync-cmapctl", "-g", "runtime.votequorum.this_node_id"],
                              env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode == 0

    wait_until(coro_ready, 30, 0.05)
    if coro.poll() is not None:
        _log(f"corosync exited with {coro.returncode}")
        sys.exit(1)
    pcmk_env = {**env, "PCMK_logfacility": "none", **cfg["env"]}
    with open(Path(cfg_path).parent / "pacemakerd.out", "ab") as out:
        pcmk = subprocess.Popen(["pacemakerd"], env=pcmk_env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT)
    _log(f"pacemakerd pid {pcmk.pid}")
    status = Path(cfg["status"])
    tmp = status.with_suffix(".tmp")
    tmp.write_text(json.dumps({"init": os.getpid(), "corosync": coro.pid, "pacemakerd": pcmk.pid}))
    tmp.rename(status)
    _supervise(coro.pid, pcmk.pid, cfg.get("parent"))


def _supervise(coro: int, pcmk: int, parent: int | None) -> None:
    """Reap children; on SIGTERM stop pacemakerd; after pacemakerd, stop corosync; exit.

    If `parent` (the process that started the cluster) goes away, as when a test runner is
    killed, the node shuts itself down the same way; 30 s after a stop was requested,
    whatever still runs is killed.
    """
    term: list[float] = []
    signal.signal(signal.SIGTERM, lambda *_: term.append(time.monotonic()))
    signal.signal(signal.SIGINT, lambda *_: term.append(time.monotonic()))
    alive = {coro: "corosync", pcmk: "pacemakerd"}
    sent: dict[int, float] = {}

    def send(pid: int, sig: int) -> None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    while alive:
        while True:
            try:
                pid, st = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                pid = 0
            if pid == 0:
                break
            if pid in alive:
                _log(f"{alive.pop(pid)} exited with status {st:#x}")
        now = time.monotonic()
        if parent is not None and os.getppid() != parent and not term:
            _log("parent went away: stopping")
            term.append(now)
        if term and now - term[0] > 30:
            for pid in alive:
                send(pid, signal.SIGKILL)
        if pcmk in alive:
            if (term or coro not in alive) and pcmk not in sent:
                send(pcmk, signal.SIGTERM)
                sent[pcmk] = now
            elif pcmk in sent and coro not in alive and now - sent[pcmk] > 15:
                send(pcmk, signal.SIGKILL)
        elif coro in alive:
            if coro not in sent:
                send(coro, signal.SIGTERM)
                sent[coro] = now
            elif now - sent[coro] > 15:
                send(coro, signal.SIGKILL)
        time.sleep(0.1)
    # Leftovers (daemonized agents' processes reparented to us): TERM, then KILL.
    for sig in (signal.SIGTERM, signal.SIGKILL):
        left = linux.descendants(os.getpid())
        for pid in left:
            send(pid, sig)
        if wait_until(_reap_all, 3, 0.05):
            break
    _log("node stopped")


def _reap_all() -> bool:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return True
        if pid == 0:
            return False


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--node-init":
        node_init_main(sys.argv[2])
    else:
        sys.exit("usage: cluster.py --node-init CONFIG.json")
