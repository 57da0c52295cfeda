"""The notify agent's validate-all says up front what would leave it nobody to notify (tryout3
J), from the CIB as the real `cibadmin --query` prints it (CIB_file points it at a file, as
for `import cib`): no ocf:ganesha-ha:exports resource of its volume, one without its ip=
(it saves no NLM client of this IP), one of a Ganesha whose config here has NLM off. Always
warnings with answer 0: pcs runs validate-all at create, and resources come in any order."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, needs_root
from exportfs_cib import _primitive

pytestmark = pytest.mark.skipif(shutil.which("cibadmin") is None or not Path("/usr/sbin/sm-notify").exists(),
                                reason="needs cibadmin (pacemaker-cli-utils) and sm-notify (nfs-common)")

RA = ROOT / "ra" / "notify"
IP = "127.0.0.1"    # named localhost by every /etc/hosts: validate-all needs a host name for the IP


def cib(tmp_path: Path, *primitives: str) -> Path:
    path = tmp_path / "cib.xml"
    path.write_text('<cib crm_feature_set="3.16.1" validate-with="pacemaker-3.9" epoch="5" num_updates="0" '
                    'admin_epoch="0"><configuration><crm_config/><nodes/>'
                    f'<resources><group id="vol-group">{"".join(primitives)}</group></resources>'
                    "<constraints/></configuration><status/></cib>\n")
    return path


def validate(volume: Path, config: Path, cib_file: Path) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "OCF_ROOT": "/usr/lib/ocf", "OCF_RESOURCE_INSTANCE": "vol-notify",
           "OCF_RESKEY_ip": IP, "OCF_RESKEY_volume": str(volume), "OCF_RESKEY_config": str(config),
           "CIB_file": str(cib_file)}
    res = subprocess.run([str(RA), "validate-all"], env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return res


def test_validate_all_warns_when_nothing_would_save_a_client_of_its_ip(tmp_path):
    volume = tmp_path / "vol"
    (volume / ".ganesha-ha").mkdir(parents=True)
    config = tmp_path / "ganesha-ha.conf"
    config.write_text(f"[node]\nruntime_dir = {tmp_path / 'run'}\n")
    ip_res = _primitive("vol-ip", "ocf", "heartbeat", "IPaddr2", {"ip": IP, "cidr_netmask": "8"})
    notify = _primitive("vol-notify", "ocf", "ganesha-ha", "notify", {"ip": IP, "volume": str(volume)})

    def exports(**params: str) -> str:
        return _primitive("vol-exports", "ocf", "ganesha-ha", "exports", {"volume": f"{volume}/", **params})

    res = validate(volume, config, cib(tmp_path, ip_res, notify))
    assert f"no ocf:ganesha-ha:exports resource has volume={volume} in the CIB" in res.stderr, res.stderr

    res = validate(volume, config, cib(tmp_path, exports(server="knfsd"), ip_res, notify))
    assert (f"set ip={IP} on vol-exports (the exports resource of volume {volume}): it has no ip=, so it saves no "
            "NLM client, and this notify resource never notifies anyone") in res.stderr, res.stderr

    res = validate(volume, config, cib(tmp_path, exports(server="knfsd", ip="10.1.2.3"), ip_res, notify))
    assert "it has ip=10.1.2.3, so it saves the NLM clients of 10.1.2.3" in res.stderr, res.stderr

    res = validate(volume, config, cib(tmp_path, exports(server="knfsd", ip=IP), ip_res, notify))
    assert "WARNING" not in res.stderr, res.stderr

    # a Ganesha whose config on this node has NLM off serves no NFSv3 lock client at all
    ganesha_conf = tmp_path / "ganesha.conf"
    ganesha_conf.write_text("NFS_CORE_PARAM {\n    Enable_NLM = false;\n}\n")
    gconfig = tmp_path / "gha-ganesha.conf"
    gconfig.write_text(config.read_text() + f"[ganesha]\nganesha_config = {ganesha_conf}\n")
    res = validate(volume, config, cib(tmp_path, exports(server="ganesha", ip=IP, config=str(gconfig)), ip_res,
                                       notify))
    assert f"{ganesha_conf} sets NFS_CORE_PARAM Enable_NLM = false" in res.stderr, res.stderr
    ganesha_conf.write_text("NFS_CORE_PARAM { Enable_NLM = true; }\n")
    res = validate(volume, config, cib(tmp_path, exports(server="ganesha", ip=IP, config=str(gconfig)), ip_res,
                                       notify))
    assert "WARNING" not in res.stderr, res.stderr

    # no CIB to read (no cluster here): nothing said of it
    res = validate(volume, config, tmp_path / "no-such-cib.xml")
    assert "WARNING" not in res.stderr, res.stderr


@needs_root
def test_validate_all_warns_for_a_volume_served_by_its_own_instance(tmp_path, tmpfs_volume):
    """An instance volume's ganesha.nfsd runs NFSv4 only, NLM off (ganesha_instance_conf.py):
    where the volume is mounted, its registry says so, whatever the node's Ganesha config."""
    config = tmp_path / "ganesha-ha.conf"
    config.write_text(f"[node]\nruntime_dir = {tmp_path / 'run'}\n")
    subprocess.run([sys.executable, "-m", "ganesha_ha.cli", "--config", str(config), "volume", "init",
                    str(tmpfs_volume), "--server", "ganesha", "--ganesha-mode", "instance"], check=True,
                   capture_output=True, timeout=60)
    exports = _primitive("vol-exports", "ocf", "ganesha-ha", "exports",
                         {"volume": str(tmpfs_volume), "server": "ganesha", "ip": IP})
    res = validate(tmpfs_volume, config, cib(tmp_path, exports))
    assert (f"volume {tmpfs_volume} is served by a Ganesha instance of its own, which runs NFSv4 only with NLM "
            "off") in res.stderr, res.stderr
