"""ganesha_plugins.py: is an FSAL's module on this node (a file in Ganesha's plugin directory)?"""
from __future__ import annotations

from pathlib import Path

import pytest

from ganesha_ha.backends.ganesha_plugins import (DEFAULT_PLUGINS_DIR, debian_package, device_fsid, module_file,
                                                 plugins_dir, plugins_dir_from_config, require_fsal)
from ganesha_ha.errors import NotInstalledError, ValidationError
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
    with pytest.raises(ValidationError, match="not a supported FSAL"):
        Fsal("PSEUDO")                              # built into ganesha.nfsd, no export's FSAL
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


def test_xfs_and_lustre_have_no_debian_package(tmp_path):
    assert debian_package("XFS") is None and debian_package("LUSTRE") is None
    with pytest.raises(NotInstalledError, match=r"FSAL XFS is not installed here \(Debian 12 has no package"):
        require_fsal(Fsal("XFS"), tmp_path)


def test_fsals_that_would_take_ganesha_down_are_refused(tmp_path):
    """GPFS without a mounted GPFS file system and RGW without a Ceph configuration make
    ganesha.nfsd exit when loaded (measured): refused as not installed here."""
    from ganesha_ha.fsal import parse_spec

    for name in ("libfsalgpfs.so", "libfsalrgw.so", "libfsalnull.so"):
        (tmp_path / name).write_bytes(b"")
    mounts = tmp_path / "mounts"
    mounts.write_text("/dev/vda / ext4 rw 0 0\n")
    with pytest.raises(NotInstalledError, match="FSAL GPFS cannot be loaded here: no GPFS file system is mounted"):
        require_fsal(Fsal("NULL", stacked=Fsal("GPFS")), tmp_path, mounts=mounts)
    mounts.write_text("/dev/vda / ext4 rw 0 0\ngpfs0 /gpfs gpfs rw 0 0\n")
    require_fsal(Fsal("GPFS"), tmp_path, mounts=mounts)
    rgw = "RGW(user_id=u,access_key_id=k,secret_access_key=s,ceph_conf={})"
    with pytest.raises(NotInstalledError, match="no Ceph configuration"):
        require_fsal(parse_spec(rgw.format(tmp_path / "ceph.conf")), tmp_path, mounts=mounts)
    (tmp_path / "ceph.conf").write_text("[global]\n")
    require_fsal(parse_spec(rgw.format(tmp_path / "ceph.conf")), tmp_path, mounts=mounts)


def test_fsid_device_from_the_ganesha_config(tmp_path):
    conf = tmp_path / "ganesha.conf"
    assert not device_fsid(conf)
    for value, expected in (("true", True), ("YES", True), ("on", True), ("false", False)):
        conf.write_text(f"NFS_CORE_PARAM {{ NFS_Port = 2049; fsid_device = {value}; }}\n")
        assert device_fsid(conf) is expected
    conf.write_text("NFS_CORE_PARAM { fsid_device = \n")
    assert not device_fsid(conf)


def test_the_modules_a_node_publishes_are_those_it_can_load(tmp_path):
    """loadable_modules: the libfsal*.so files of the plugin directory (what each node
    publishes for placement.py), without GPFS when no GPFS file system is mounted and RGW
    without a Ceph configuration (both would make ganesha.nfsd exit); a stacked FSAL's needs
    are every layer's module, the built-in PSEUDO/MDCACHE none."""
    from ganesha_ha.backends.ganesha_plugins import loadable_modules, needed_modules
    from ganesha_ha.fsal import parse_spec

    plugins = tmp_path / "plugins"
    plugins.mkdir()
    for name in ("libfsalvfs.so", "libfsalproxy_v4.so", "libfsalgpfs.so", "libfsalrgw.so", "libfsal.so",
                 "libfsalmem.so.1", "README"):
        (plugins / name).write_bytes(b"")
    (plugins / "libfsalnull.so").mkdir()            # not a file: not a module
    mounts, ceph = tmp_path / "mounts", tmp_path / "ceph.conf"
    mounts.write_text("/dev/vda / ext4 rw 0 0\n")
    assert loadable_modules(plugins, mounts, str(ceph)) == {"VFS", "PROXY_V4"}
    mounts.write_text("gpfs0 /gpfs gpfs rw 0 0\n")
    ceph.write_text("[global]\n")
    assert loadable_modules(plugins, mounts, str(ceph)) == {"VFS", "PROXY_V4", "GPFS", "RGW"}
    assert loadable_modules(tmp_path / "nowhere", mounts, str(ceph)) == frozenset()
    assert needed_modules(parse_spec("NULL(VFS)")) == {"NULL", "VFS"} and needed_modules(parse_spec("MEM")) == {"MEM"}
