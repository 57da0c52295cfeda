"""The sandbox cluster's configuration files, rendered: corosync.conf and the first CIB.

Pure but for `latest_schema()`, which looks at the installed Pacemaker's schema files.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping, Sequence


PACEMAKER_SCHEMA_DIR = Path("/usr/share/pacemaker")

DEFAULT_CRM_CONFIG = {
    "stonith-enabled": "false",
    "no-quorum-policy": "ignore",
    "dc-deadtime": "2s",
    "cluster-recheck-interval": "15s",
    "cluster-name": "gha-sandbox",
}


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
