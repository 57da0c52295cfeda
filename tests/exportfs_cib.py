"""A cluster as many run it today: one ocf:heartbeat:exportfs primitive per client and
directory, hand-typed fsids, two volumes (each a group: file system, its exportfs
primitives, a floating IP). Shared by tests/server/test_import.py (the upstream agent's etab
against the imported volumes') and tests/cluster/test_import_cib.py (the printed pcs and
crmsh commands against CIB files).
"""
from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import quoteattr

UUID1 = "0b5b7f4e-1b2c-4d3e-8f9a-0123456789ab"
UUID2 = "6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f"

# (primitive, directory or directories, clientspec, options, fsid): ten per volume, several
# clientspecs per directory, IPv6 hosts and networks in the agent's brackets, a primitive
# with two directories (fsid, fsid + 1), a trailing '/', an fsid in the options that the
# fsid parameter overrides, a number above 2^31 (etab prints it negative), empty options
# (exportfs's defaults: read-only)
PRIMITIVES = {
    "vol1": [
        ("v1-a-net", "a", "10.1.0.0/16", "rw,no_root_squash", "1001"),
        ("v1-a-v6", "a", "[fd00:1::]/64", "ro,sync", "1001"),
        ("v1-a-host", "a", "192.0.2.10", "rw,insecure,all_squash,anonuid=1000,anongid=1000", "1001"),
        ("v1-b-all", "b", "*", "ro,async", UUID1),
        ("v1-b-wild", "b", "*.example.com", "rw,sec=krb5:sys", UUID1),
        ("v1-cd", "c d", "@ng1", "rw,crossmnt", "1010"),
        ("v1-e-v6host", "e", "[fd00:1::5]", "rw,no_subtree_check", "4000000005"),
        ("v1-e-net", "e", "10.2.0.0/24", "ro", "4000000005"),
        ("v1-f", "f/", "192.0.2.0/28", "", "1020"),
        ("v1-g", "g", "[2001:db8::]/48", "rw,no_root_squash,fsid=77", "1030"),
    ],
    "vol2": [
        ("v2-a-all", "a", "*", "rw,no_root_squash,no_wdelay", "2001"),
        ("v2-a-v6", "a", "[fd00:2::]/56", "ro", "2001"),
        ("v2-b-net", "b", "172.16.0.0/12", "rw,sync,subtree_check", "2002"),
        ("v2-b-host", "b", "198.51.100.7", "ro,insecure", "2002"),
        ("v2-b-ng", "b", "@ng2", "rw,all_squash,anonuid=500", "2002"),
        ("v2-c", "c", "[fd00:2::9]", "rw,sec=sys", UUID2),
        ("v2-de", "d e", "10.9.0.0/16", "rw,nohide", "2100"),
        ("v2-f-a", "f", "node?.example.org", "ro,sync", "2200"),
        ("v2-f-b", "f", "203.0.113.0/24", "rw,root_squash", "2200"),
        ("v2-g", "g", "[2001:db8:2::1]", "rw", "2300"),
    ],
}
IPS = {"vol1": "192.0.2.101", "vol2": "192.0.2.102"}


def directories(volume: str) -> list[str]:
    return sorted({d.rstrip("/") for _, dirs, _, _, _ in PRIMITIVES[volume] for d in dirs.split()})


def agent_params(volume: str, mountpoint: Path) -> list[tuple[str, dict[str, str]]]:
    """(primitive id, its parameters) as the CIB below gives them to the agent."""
    out = []
    for pid, dirs, spec, options, fsid in PRIMITIVES[volume]:
        params = {"directory": " ".join(f"{mountpoint}/{d}" for d in dirs.split()), "clientspec": spec,
                  "fsid": fsid}
        if options:
            params["options"] = options
        out.append((pid, params))
    return out


def _primitive(pid: str, cls: str, provider: str, kind: str, params: dict[str, str]) -> str:
    nv = "".join(f"<nvpair id={quoteattr(f'{pid}-{k}')} name={quoteattr(k)} value={quoteattr(v)}/>"
                 for k, v in params.items())
    return (f'<primitive id="{pid}" class="{cls}" provider="{provider}" type="{kind}">'
            f'<instance_attributes id="{pid}-ia">{nv}</instance_attributes>'
            f'<operations><op id="{pid}-monitor" name="monitor" interval="10s" timeout="20s"/></operations>'
            "</primitive>")


def cib_xml(mountpoints: dict[str, Path]) -> str:
    """A whole CIB (as `cibadmin --query` prints one, without status) holding both volumes."""
    groups = []
    for volume, mp in mountpoints.items():
        members = [_primitive(f"{volume}-fs", "ocf", "heartbeat", "Filesystem",
                              {"device": f"/dev/drbd{volume[-1]}", "directory": str(mp), "fstype": "ext4"})]
        members += [_primitive(pid, "ocf", "heartbeat", "exportfs", params) for pid, params in agent_params(volume, mp)]
        members.append(_primitive(f"{volume}-ip", "ocf", "heartbeat", "IPaddr2",
                                  {"ip": IPS[volume], "cidr_netmask": "24"}))
        groups.append(f'<group id="{volume}-group">{"".join(members)}</group>')
    return ('<cib crm_feature_set="3.16.1" validate-with="pacemaker-3.9" epoch="5" num_updates="0" admin_epoch="0">'
            "<configuration><crm_config><cluster_property_set id=\"cib-bootstrap-options\">"
            '<nvpair id="cib-bootstrap-options-stonith-enabled" name="stonith-enabled" value="false"/>'
            "</cluster_property_set></crm_config><nodes/>"
            f"<resources>{''.join(groups)}</resources>"
            '<constraints><rsc_location id="vol1-group-prefers-n1" rsc="vol1-group" node="n1" score="50"/>'
            "</constraints></configuration><status/></cib>\n")
