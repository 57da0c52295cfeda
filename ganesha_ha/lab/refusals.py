"""What the cluster says the exports agent refused: failed actions with their exit reason.

A start that the agent refuses with OCF_ERR_CONFIGURED (6) is a hard error for Pacemaker:
it records the failure with the agent's `ocf-exit-reason:` line and starts the resource on no
node. The cluster lab's `--break server-scope` (nodes presenting different NFSv4 server
scopes) must end there, at the agent's server-scope check (issue 16), before any client can
lose its state: this reads that out of `crm_mon --output-as=xml` (its `<failures>` element:
`<failure op_key=... node=... exitstatus=... exitreason=... exitcode=.../>`, Pacemaker 2.1).
"""
from __future__ import annotations

import html
import xml.etree.ElementTree as ET
from typing import Any, Callable

from .procs import wait_until

OCF_ERR_CONFIGURED = 6


def failures(root: ET.Element | None, resources: set[str]) -> list[dict[str, Any]]:
    """The failed actions of `resources` in a crm_mon XML document: op_key, node, rc, reason.
    Pure."""
    out = []
    for f in (root.iter("failure") if root is not None else ()):
        op_key = f.get("op_key") or f.get("id") or ""
        if not any(op_key.startswith(f"{rid}_") for rid in resources):   # <rsc>_<op>_<interval>
            continue
        try:
            rc = int(f.get("exitcode", f.get("rc", "")))
        except ValueError:
            rc = -1
        # crm_mon escapes the reason once more than XML needs (&apos; arrives as text)
        out.append({"op_key": op_key, "node": f.get("node") or f.get("uname") or "?", "rc": rc,
                    "reason": html.unescape(f.get("exitreason") or f.get("exitstatus") or "")})
    return out


def wait_refusal(crm_mon_xml: Callable[[], ET.Element | None], resources: set[str], started: Callable[[], bool],
                 timeout: float) -> list[dict[str, Any]]:
    """Until a start of `resources` failed with OCF_ERR_CONFIGURED, or `started()` says they
    all run: those refusals (empty when none came within `timeout` seconds)."""
    seen: list[dict[str, Any]] = []

    def done() -> bool:
        seen[:] = [f for f in failures(crm_mon_xml(), resources) if f["rc"] == OCF_ERR_CONFIGURED]
        return bool(seen) or started()
    wait_until(done, timeout, 0.5)
    return list(seen)


def check_scope_refusal(lab: Any, timeout: float = 60.0) -> None:
    """--break server-scope in the cluster lab (cluster_lab.ClusterLab `lab`): the starts the
    cluster schedules must be refused by the agent's server-scope check. Reports what the
    cluster recorded (`scope_check`: node -> rc and the agent's reason); when refused, ends
    the run there (ClusterError: nothing can be served), as it must."""
    from .sandbox import ClusterError

    exports = {f"{v.recipe.name}-exports" for v in lab.vols.values()}   # recipe.VolumeRecipe.ids()
    all_ids = [rid for v in lab.vols.values() for rid in v.recipe.ids()]
    refused = wait_refusal(lab.cluster.crm_mon_xml, exports, lambda: len(lab.started_on(all_ids)) == len(all_ids),
                           timeout)
    lab.report["scope_check"] = {f["node"]: {"rc": f["rc"], "reason": f["reason"][:300], "action": f["op_key"]}
                                 for f in refused}
    if not refused:
        lab.report["scope_check"] = {"cluster": {"rc": 0, "reason": "every start succeeded", "action": "start"}}
        lab.say("agent start with different scopes: not refused")
        return
    lab.say("agent start with different scopes: refused (OCF_ERR_CONFIGURED) on "
            + ", ".join(sorted({f["node"] for f in refused})) + f": {refused[0]['reason'][:200]}")
    if any("Server_Scope" not in f["reason"] for f in refused):
        raise ClusterError(f"a start was refused for another reason than the server scope: {refused}")
    raise ClusterError("the exports agent refused to start the volumes (OCF_ERR_CONFIGURED): "
                       + refused[0]["reason"])
