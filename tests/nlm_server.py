"""A Ganesha with NFSv3, MOUNT and NLM, as Debian runs it, in a private namespace of its own.

NLM needs rpcbind (clients find MOUNT's and NLM's ports there; Ganesha registers with it)
and rpc.statd (Ganesha SM_MONs every locking client with it, over TCP to localhost), so the
server is a lab node (lab/node.py: named network namespace `gha-<id>-s`, its own mount and
UTS namespaces, hostname = its namespace's name) with its own /run (rpcbind's socket and
state), /var/lib/nfs (statd's sm/, sm.bak/, state) and /etc/hosts (localhost, the floating
IP's name for `sm-notify -v`, the node's name). The commands are those of
docs/research/clients-facts.md section 3: `rpcbind -f -w`, `rpc.statd -F --no-notify`, then
ganesha.nfsd with Protocols 3, 4 and Enable_NLM. The client side is the lab network's
client namespace `gha-<id>-c` with two addresses (.10 and .11: two NLM hosts); client code
runs there through `NetnsWorker` (lab/nsthread.py), a thread that entered it. The node's
parts are the lab's own (lab/node.py with `nlm`, lab/nlm_services.py).

Everything is ended by the PID started, and the namespaces removed, by `stop()`.
"""
from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

from ganesha_servers import export_block

from ganesha_ha.lab.ganesha_daemon import GaneshaDaemon, PrivateBus, in_grace
from ganesha_ha.lab.netns import LabNet
from ganesha_ha.lab.node import LabNode
from ganesha_ha.lab.nsthread import NetnsWorker

FIP_NAME = "gha-fip.lab"


def skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (namespaces, rpcbind, statd, ganesha.nfsd)"
    for prog in ("ganesha.nfsd", "rpcbind", "rpc.statd", "sm-notify"):
        if shutil.which(prog) is None and not Path("/usr/sbin", prog).exists():
            return f"{prog} is not installed"
    return None


class NlmServer:
    """The server node and the client namespace; `start()` builds, `stop()` tears down."""

    def __init__(self, root: Path, grace_period: int = 5) -> None:
        self.root = root
        self.grace_period = grace_period
        self.net = LabNet(run_id=f"n{uuid.uuid4().hex[:6]}", subnet="10.214.90", nodes=("s",))
        self.node: LabNode | None = None
        self.bus: PrivateBus | None = None
        self.ganesha: GaneshaDaemon | None = None
        self.client: NetnsWorker | None = None

    # ---- names and addresses ----------------------------------------------------------
    @property
    def fip(self) -> str:
        return self.net.floating_ip

    @property
    def client_addrs(self) -> tuple[str, str]:
        return self.net.addr("c"), f"{self.net.subnet}.11"

    @property
    def export_dir(self) -> Path:
        return self.root / "export"

    @property
    def var_lib_nfs(self) -> Path:
        assert self.node is not None
        return self.node.var_lib_nfs

    def nsenter(self) -> list[str]:
        assert self.node is not None
        return self.node.nsenter()

    # ---- life cycle -------------------------------------------------------------------
    def start(self) -> "NlmServer":
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.export_dir.mkdir(parents=True)
        self.net.create()
        self.net.add_client_addr(self.client_addrs[1])
        # the lab node with NLM on: its own /run, /var/lib/nfs (statd's sm/) and /etc/hosts
        self.node = LabNode("s", self.net.ns("s"), self.root / "s", self.net.addr("s"), run_ganesha=False,
                            nlm=True, hosts={self.fip: FIP_NAME}, grace_period=self.grace_period)
        self.node.start_holder()
        self.net.add_ip("s")
        self.node.start_daemons()            # the bus
        self.node.start_rpc_services()       # rpcbind and rpc.statd, registered
        self.bus = self.node.bus
        self.start_ganesha()
        self.client = NetnsWorker(self.net.client)

    def start_ganesha(self) -> GaneshaDaemon:
        """Start ganesha.nfsd (NFSv3 + NLM, the export on Path `export_dir`, every client RW);
        it starts in grace, which with NLM on lasts the whole Grace_Period."""
        assert self.node is not None and self.bus is not None
        self.ganesha = self.node.make_ganesha(recovery_root=self.node.recovery_root)
        self.ganesha.grace_period = self.grace_period
        self.ganesha.extra_config = export_block(3, self.export_dir, pseudo="/v3", protocols="3, 4", clients="*")
        self.node.ganesha = self.ganesha
        self.node.start_ganesha()
        return self.ganesha

    def kill_ganesha(self) -> None:
        """SIGKILL (a crash: also the quick way out, SIGTERM with NLM clients takes ~12 s)."""
        if self.ganesha is not None:
            self.ganesha.kill()

    def in_grace(self) -> bool:
        assert self.bus is not None
        return in_grace(self.bus.address)

    def wait_out_of_grace(self, limit: float | None = None) -> None:
        t0 = time.monotonic()
        limit = limit if limit is not None else self.grace_period + 15
        while self.in_grace():
            if time.monotonic() - t0 > limit:
                raise AssertionError(f"Ganesha still in grace after {limit} s")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.client is not None:
            self.client.stop()
        if self.node is not None:
            self.node.stop()             # Ganesha, rpcbind and statd, the bus, the holder
        left = self.net.remove()
        assert not left, f"namespaces left behind: {left}"
