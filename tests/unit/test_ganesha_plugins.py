"""ganesha_plugins.py: is an FSAL's module on this node (a file in Ganesha's plugin directory)?"""
from __future__ import annotations

from pathlib import Path

import pytest

from ganesha_ha.backends.ganesha_plugins import (DEFAULT_PLUGINS_DIR, debian_package, module_file,
                                                 plugins_dir, plugins_dir_from_config, require_fsal)
from ganesha_ha.errors import NotInstalledError
from ganesha_ha.fsal import Fsal


def test_module_file_and_package_names_as_ganesha_and_debian_spell_them():
    assert [module_file(n) for n in ("VFS", "PROXY_V4", "null")] == \
        ["libfsalvfs.so", "libfsalproxy_v4.so", "libfsalnull.so"]
    assert [debian_package(n) for n in ("VFS", "MEM", "NULL", "PROXY_V4", "CEPH", "GLUSTER", "GPFS", "RGW")] == [
        "nfs-ganesha-vfs", "nfs-ganesha-mem", "nfs-ganesha-nullfs", "nfs-ganesha-proxy-v4",
        "nfs-ganesha-ceph", "nfs-ganesha-gluster", "nfs-ganesha-gpfs", "nfs-ganesha-rgw"]


@pytest.mark.skipif(not DEFAULT_PLUGINS_DIR.is_dir(), reason="nfs-ganesha is not installed")
def test_debian_packages_own_the_modules_named_here():
    """Each module installed on this machine belongs to the package debian_package names."""
    import subprocess

    for so in sorted(DEFAULT_PLUGINS_DIR.glob("libfsal*.so")):
        name = so.name[len("libfsal"):-len(".so")].upper()
        owner = subprocess.run(["dpkg", "-S", str(so)], capture_output=True, text=True).stdout.split(":")[0]
        assert owner == debian_package(name), so


def test_every_fsal_of_the_stack_is_checked_and_named_with_its_package(tmp_path):
    (tmp_path / "libfsalvfs.so").write_bytes(b"")
    require_fsal(Fsal("VFS"), tmp_path)
    require_fsal(Fsal("PSEUDO"), tmp_path)          # built into ganesha.nfsd
    with pytest.raises(NotInstalledError, match=r"^FSAL NULL is not installed here \(Debian package "
                                                r"nfs-ganesha-nullfs\): .*/libfsalnull.so is missing; "
                                                r"export /x needs it$"):
        require_fsal(Fsal("NULL", stacked=Fsal("VFS")), tmp_path, "export /x")
    (tmp_path / "libfsalnull.so").write_bytes(b"")
    require_fsal(Fsal("NULL", stacked=Fsal("VFS")), tmp_path)
    with pytest.raises(NotInstalledError, match="FSAL MEM"):
        require_fsal(Fsal("NULL", stacked=Fsal("MEM")), tmp_path)


def test_the_directory_from_the_setting_then_the_ganesha_config_then_debian(tmp_path):
    conf = tmp_path / "ganesha.conf"
    conf.write_text('%include "/etc/ganesha/other.conf"\n# comment\nNFS_CORE_PARAM {\n  NFS_Port = 2049;\n'
                    '  Plugins_Dir = "/opt/ganesha/lib";\n}\nEXPORT { Export_Id = 1; Path = /x; }\n')
    assert plugins_dir_from_config(conf) == Path("/opt/ganesha/lib")
    assert plugins_dir("", str(conf)) == Path("/opt/ganesha/lib")
    assert plugins_dir("/elsewhere", str(conf)) == Path("/elsewhere")
    assert plugins_dir("", str(tmp_path / "none.conf")) == DEFAULT_PLUGINS_DIR
    conf.write_text("NFS_CORE_PARAM { NFS_Port = 2049; }\n")
    assert plugins_dir("", str(conf)) == DEFAULT_PLUGINS_DIR
    conf.write_text("NFS_CORE_PARAM { Plugins_Dir = \n")   # unparseable: the default
    assert plugins_dir("", str(conf)) == DEFAULT_PLUGINS_DIR
