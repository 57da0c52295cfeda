"""A Ganesha with NFSv3, MOUNT and NLM, as Debian runs it, in a private namespace of its own.

NLM needs rpcbind (clients find MOUNT's and NLM's ports there; Ganesha registers with it)
and rpc.statd (Ganesha SM_MONs every locking client with it, over TCP to localhost), so the
server is a lab node (lab/node.py: named network namespace `gha-<id>-s`, its own mount and
UTS namespaces, hostname = its namespace's name) with its own /run (rpcbind's socket and
state), /var/lib/nfs (statd's sm/, sm.bak/, state) and /etc/hosts (localhost, the floating
IP's name for `sm-notify -v`, the node's name). The commands are those of
/work/notes/clients-facts.md section 3: `rpcbind -f -w`, `rpc.statd -F --no-notify`, then
ganesha.nfsd with Protocols 3, 4 and Enable_NLM. The client side is the lab network's
client namespace `gha-<id>-c` with two addresses (.10 and .11: two NLM hosts); client code
runs there through `NetnsWorker`, a thread that entered it.

Everything is ended by the PID started, and the namespaces removed, by `stop()`.
"""
from __future__ import annotations

import os
import queue
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from ganesha_servers import TunedGanesha, export_block

from ganesha_ha import linux
from ganesha_ha.lab.ganesha_daemon import PrivateBus, in_grace
from ganesha_ha.lab.netns import LabNet, _ipr
from ganesha_ha.lab.node import LabNode
from ganesha_ha.lab.procs import stop_popen

FIP_NAME = "gha-fip.lab"


def skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (namespaces, rpcbind, statd, ganesha.nfsd)"
    for prog in ("ganesha.nfsd", "rpcbind", "rpc.statd", "sm-notify"):
        if shutil.which(prog) is None and not Path("/usr/sbin", prog).exists():
            return f"{prog} is not installed"
    return None


class NetnsWorker:
    """A thread inside network namespace `netns` running the callables it is given: its
    sockets, and those of the threads it starts, belong to that namespace."""

    def __init__(self, netns: str) -> None:
        self._q: queue.Queue = queue.Queue()
        self._netns = netns
        self._entered = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"gha-{netns}", daemon=True)
        self._thread.start()
        self._entered.wait(10)
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            linux.setns_path(f"/run/netns/{self._netns}", linux.CLONE_NEWNET)
        except BaseException as exc:
            self._error = exc
            return
        finally:
            self._entered.set()
        while True:
            fn, box, done = self._q.get()
            if fn is None:
                return
            try:
                box.append((True, fn()))
            except BaseException as exc:
                box.append((False, exc))
            done.set()

    def __call__(self, fn: Callable[[], Any], timeout: float = 60.0) -> Any:
        box: list = []
        done = threading.Event()
        self._q.put((fn, box, done))
        if not done.wait(timeout):
            raise TimeoutError(f"no answer from the worker in {self._netns} in {timeout} s")
        ok, value = box[0]
        if not ok:
            raise value
        return value

    def stop(self) -> None:
        self._q.put((None, None, None))
        self._thread.join(5)


class NlmServer:
    """The server node and the client namespace; `start()` builds, `stop()` tears down."""

    def __init__(self, root: Path, grace_period: int = 5) -> None:
        self.root = root
        self.grace_period = grace_period
        self.net = LabNet(run_id=f"n{uuid.uuid4().hex[:6]}", subnet="10.214.90", nodes=("s",))
        self.node: LabNode | None = None
        self.bus: PrivateBus | None = None
        self.ganesha: TunedGanesha | None = None
        self.daemons: list[subprocess.Popen] = []
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
        with _ipr(self.net.client) as ipr:
            ipr.addr("add", index=ipr.link_lookup(ifname="eth0")[0], address=self.client_addrs[1],
                     prefixlen=self.net.prefixlen)
        work = self.root / "s"
        run = work / "run"
        (run / "rpcbind").mkdir(parents=True)
        shutil.chown(run / "rpcbind", "_rpc", "nogroup")
        hosts = self.root / "hosts"
        hosts.write_text(f"127.0.0.1 localhost\n{self.fip} {FIP_NAME} {FIP_NAME.split('.')[0]}\n"
                         f"{self.net.addr('s')} {self.net.ns('s')}\n")
        self.node = LabNode("s", self.net.ns("s"), work, self.net.addr("s"), run_ganesha=False,
                            binds=[(str(run), "/run"), (str(hosts), "/etc/hosts")])
        self.node.prepare()
        for d in ("sm", "sm.bak"):
            (self.var_lib_nfs / d).mkdir()
            shutil.chown(self.var_lib_nfs / d, "statd", "nogroup")
        (self.var_lib_nfs / "state").touch()
        shutil.chown(self.var_lib_nfs / "state", "statd")
        self.node.start_holder()
        self.net.add_ip("s")
        log = open(self.root / "rpc-daemons.log", "ab")
        for argv in (["rpcbind", "-f", "-w"], ["rpc.statd", "-F", "--no-notify"]):
            self.daemons.append(subprocess.Popen(["setsid", *self.nsenter(), *argv],
                                                 stdin=subprocess.DEVNULL, stdout=log, stderr=log))
            self._wait_registered(argv[0])
        self.bus = PrivateBus(work / "bus", prefix_argv=["setsid", *self.nsenter()]).start()
        self.start_ganesha()
        self.client = NetnsWorker(self.net.client)

    def _wait_registered(self, prog: str) -> None:
        """Until rpcinfo in the node lists the portmapper (rpcbind) or status (statd)."""
        want = "portmapper" if prog == "rpcbind" else "status"
        t0 = time.monotonic()
        while time.monotonic() - t0 < 10:
            out = subprocess.run([*self.nsenter(), "rpcinfo", "-p"], capture_output=True,
                                 text=True).stdout
            if want in out:
                return
            time.sleep(0.05)
        raise RuntimeError(f"{prog} did not register in the server namespace")

    def start_ganesha(self) -> TunedGanesha:
        """Start ganesha.nfsd (NFSv3 + NLM, the export on Path `export_dir`, every client RW);
        it starts in grace, which with NLM on lasts the whole Grace_Period."""
        assert self.node is not None and self.bus is not None
        work = self.root / "s"
        self.ganesha = TunedGanesha(work / "ganesha", self.bus, port=2049, bind_addr="0.0.0.0",
                                    grace_period=self.grace_period, recovery_root=work / "recovery",
                                    prefix_argv=["setsid", *self.nsenter()], nlm=True,
                                    extra_config=export_block(3, self.export_dir, pseudo="/v3",
                                                              protocols="3, 4", clients="*"))
        return self.ganesha.start()

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
        self.kill_ganesha()
        if self.bus is not None:
            self.bus.stop()
        for p in reversed(self.daemons):
            stop_popen(p)
        if self.node is not None:
            self.node.stop()
        left = self.net.remove()
        assert not left, f"namespaces left behind: {left}"
