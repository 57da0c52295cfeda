"""Every client the labs run against one volume, started together and read together.

Per volume `k` of a lab, from hosts of their own (addresses of the client namespace, so a
record or a statd entry names the volume's clients only, as it would with real hosts):

* `10+k`: the NFSv4 client (NFSv4.1 by default) that keeps its handle, its opens and its
  write stream across every move (evidence.ClientWatch), and beside it a second client id
  that opens new files throughout (openprobe.NewOpenProbe);
* with NLM on, `40+k`: an NFSv3 client holding an NLM lock, with its NSM listener, and
  `70+k`: a second host that wants the same lock (nlm_watch.NlmWatch).

The direct lab (one volume) and the cluster lab (two; two per node with --nodes) differ in
how a volume moves; both call `begin()` before a failover (moving or not) and
`after_grace()` once the node that took it (or serves it) left grace.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from .base import LabOptions
from .evidence import ClientWatch
from .labclient import LabClient
from .netns import LabNet
from .nlm_watch import NlmWatch
from .openprobe import NewOpenProbe

MAX_VOLUMES = 30


def client_addresses(net: LabNet, k: int) -> dict[str, str]:
    """The client hosts of volume `k` (0-based): NFSv4, NLM holder, NLM contender. Up to
    MAX_VOLUMES (lab --nodes 9 runs 18): .10-.39, .40-.69, .70-.99 of the lab's /24, below
    the floating IPs (.100 and up) and above the nodes (.1-.9)."""
    if not 0 <= k < MAX_VOLUMES:
        raise ValueError(f"at most {MAX_VOLUMES} volumes per lab")
    return {"nfs4": f"{net.subnet}.{10 + k}", "nlm_holder": f"{net.subnet}.{40 + k}",
            "nlm_contender": f"{net.subnet}.{70 + k}"}


@dataclass
class VolumeClients:
    """The clients of one volume (see the module doc)."""

    name: str
    ip: str
    client: LabClient
    watch: ClientWatch
    probe: NewOpenProbe
    nlm: NlmWatch | None = None

    @classmethod
    def connect(cls, net: LabNet, k: int, opts: LabOptions, *, name: str, ip: str, file: str,
                stream_file: str, new_open_dir: str, v3_export_path: str, first_line: bytes,
                say: Callable[..., Any]) -> tuple["VolumeClients", dict[str, Any]]:
        """Start them all against floating IP `ip`: the NFSv4 client opens `file` and writes
        `first_line` and the stream, the probe opens files in `new_open_dir`, the NFSv3
        client mounts `v3_export_path` and locks. Returns them and what they report."""
        addrs = client_addresses(net, k)
        for role in (("nfs4", "nlm_holder", "nlm_contender") if opts.nlm else ("nfs4",)):
            net.add_client_addr(addrs[role])
        mv = opts.minorversion
        client = LabClient(net.client, ip, client_name=f"gha-lab-{name}", minorversion=mv,
                           source_addr=addrs["nfs4"]).start()
        vc = cls(name, ip, client, ClientWatch(client, file=file, stream_file=stream_file,
                                               grace_period=opts.grace_period, say=say),
                 NewOpenProbe(net.client, ip, new_open_dir, client_name=f"gha-lab-{name}-new",
                              source_addr=addrs["nfs4"], minorversion=mv))
        try:
            info = vc.watch.open(first_line)
            vc.probe.start()
            info["new_opens"] = f"{new_open_dir}/ (a second client id of {addrs['nfs4']})"
            if opts.nlm:
                vc.nlm = NlmWatch(net.client, ip, v3_export_path, holder_addr=addrs["nlm_holder"],
                                  contender_addr=addrs["nlm_contender"])
                info["nlm"] = vc.nlm.start()
        except BaseException:
            vc.stop()
            raise
        return vc, info

    @property
    def client_names(self) -> tuple[str, ...]:
        """The NFSv4 client names of this volume (the watched client's and the probe's)."""
        return (self.client.client_name, self.probe.client_name)

    def wait_forgotten(self, remembered: Callable[[tuple[str, ...]], list[str]],
                       timeout: float) -> dict[str, Any]:
        """Before the volume moves to a node it left lately: until that node has expired
        this volume's NFSv4 client ids (`remembered(names)`: the names it still holds, e.g.
        node.LabNode.remembered_clients), or `timeout` seconds.

        Why: Ganesha 4.3 checks a client against the take-over records only when it
        confirms a *new* client id (nfs4_chk_clid from nfs4_op_create_session.c /
        setclientid_confirm). A client that comes back, with the same verifier, to a node
        still holding its unexpired client id gets that id back already confirmed, so it is
        never allowed to reclaim (OPEN CLAIM_PREVIOUS: NFS4ERR_NO_GRACE, measured here) and
        keeps the node's grace from lifting early. A failback within Lease_Lifetime (plus a
        reaper tick) of the move is refused its reclaims: the lab waits that out and
        reports the wait. Returns {"waited_s", "still_remembered"}."""
        t0 = time.monotonic()
        left = remembered(self.client_names)
        while left and time.monotonic() - t0 < timeout:
            time.sleep(0.2)
            left = remembered(self.client_names)
        return {"waited_s": round(time.monotonic() - t0, 2), "still_remembered": left}

    def begin(self, moving: bool) -> None:
        """Before a failover: a new window of new opens; for a moving volume the NFSv4
        client replays its handle and the NFSv3 contender starts wanting the lock."""
        self.probe.mark()
        if moving:
            self.watch.begin()
            if self.nlm is not None:
                self.nlm.begin()

    def after_grace(self, t_up: float | None, grace_over_at: float | None) -> dict[str, Any]:
        """Once the serving node left grace (at `grace_over_at`, time.monotonic(); None: it
        never did): the new opens of this failover (`t_up`: when a moved volume was served
        again; None for one that did not move) and, for a moved volume with NLM, its lock's
        evidence. Waits (up to 10 s) for a new open that began after grace."""
        self.probe.wait_success_after(grace_over_at or t_up or 0.0, 10)
        out: dict[str, Any] = {"new_opens": self.probe.evidence(t_up)}
        if t_up is not None and self.nlm is not None:
            out["nlm"] = self.nlm.evidence(t_up, grace_over_at)
        return out

    def checks(self, ev: dict[str, Any], *, new_open_limit: float | None) -> dict[str, bool]:
        """The verdict on new opens (they resumed; within `new_open_limit` seconds of the
        volume being served again, when one is set) and on the NLM lock."""
        no = ev.get("new_opens") or {}
        out = {"new_opens_resumed": no.get("outage_s") is not None}
        if new_open_limit is not None:
            after = no.get("after_up_s")
            out["new_opens_within_limit"] = after is not None and after <= new_open_limit
        out.update((ev.get("nlm") or {}).get("checks", {}))
        return out

    def stop(self) -> None:
        for part in (self.nlm, self.probe, self.client):
            if part is not None:
                try:
                    part.stop()
                except Exception:  # noqa: BLE001 - teardown goes on
                    pass
