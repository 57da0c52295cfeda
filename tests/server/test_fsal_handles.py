"""Handle identity across nodes (issue 15): the volume's block device has another minor number
on the node that takes it over (DRBD, LVM), here the same ext4 image attached through another
loop device and served by a new ganesha.nfsd. A VFS handle taken before keeps working after;
with Ganesha's fsid_device = true it goes stale, which is why ganesha-ha refuses that setting
(and fsid_type Dev/Device) for HA exports unless forced."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import IS_ROOT, GaneshaLab
from ganesha_ha.lab.ganesha_daemon import GaneshaDaemon
from ganesha_ha.lab.nfs.client import Nfs4Client
from ganesha_ha.lab.nfs.nfs4 import NfsError

pytestmark = [pytest.mark.skipif(not IS_ROOT or shutil.which("ganesha.nfsd") is None
                                 or shutil.which("losetup") is None, reason="needs root, ganesha.nfsd, losetup")]
CONTENT = b"the same file on both nodes\n"


class DeviceFsidGanesha(GaneshaDaemon):
    """A ganesha.nfsd whose NFS_CORE_PARAM says fsid_device = true."""

    def write_config(self) -> Path:
        path = super().write_config()
        text = path.read_text()
        assert "    Enable_UDP = false;\n" in text
        path.write_text(text.replace("    Enable_UDP = false;\n", "    Enable_UDP = false;\n    fsid_device = true;\n"))
        return path


class Image:
    """One ext4 image; attach() puts it on a free loop device, a filler image first when asked so
    that the device differs from the last one."""

    def __init__(self, root: Path):
        self.root = root
        self.path = root / "volume.img"
        self.filler = root / "filler.img"
        for img in (self.path, self.filler):
            with open(img, "wb") as fh:
                fh.truncate(32 * 1024 * 1024)
        subprocess.run(["mkfs.ext4", "-F", "-q", str(self.path)], check=True, capture_output=True)
        self.devices: list[str] = []

    def attach(self, avoid: str | None = None) -> str:
        while True:
            dev = subprocess.run(["losetup", "--find", "--show", str(self.path)], check=True,
                                 capture_output=True, text=True).stdout.strip()
            self.devices.append(dev)
            if dev != avoid:
                return dev
            # the kernel gave back the same device: occupy it with the filler and try again
            self.detach(dev)
            filler = subprocess.run(["losetup", "--find", "--show", str(self.filler)], check=True,
                                    capture_output=True, text=True).stdout.strip()
            self.devices.append(filler)

    def detach(self, dev: str) -> None:
        subprocess.run(["losetup", "-d", dev], check=True, capture_output=True)
        self.devices.remove(dev)

    def close(self) -> None:
        for dev in list(self.devices):
            subprocess.run(["losetup", "-d", dev], capture_output=True)


def minor(dev: str) -> int:
    return os.minor(os.stat(dev).st_rdev)


@pytest.fixture
def image(tmp_path):
    img = Image(tmp_path)
    try:
        yield img
    finally:
        subprocess.run(["umount", "-l", str(tmp_path / "vol")], capture_output=True)
        img.close()


def serve(lab: GaneshaLab, dev: str, mountpoint: Path) -> None:
    subprocess.run(["mount", dev, str(mountpoint)], check=True)
    lab.cli("volume", "start", str(mountpoint), check=True)


def takeover(lab: GaneshaLab, image: Image, old_dev: str, mountpoint: Path, daemon_class=GaneshaDaemon) -> str:
    """What a failover does to the volume: stop, unmount, detach; the other node attaches the
    same image through another loop device, mounts it, and its own ganesha.nfsd serves it."""
    lab.cli("volume", "stop", str(mountpoint), check=True)
    subprocess.run(["umount", str(mountpoint)], check=True)
    image.detach(old_dev)
    lab.daemon.stop()
    lab.daemon.__class__ = daemon_class
    lab.daemon.start()
    new_dev = image.attach(avoid=old_dev)
    assert minor(new_dev) != minor(old_dev), "the test needs another minor number"
    serve(lab, new_dev, mountpoint)
    return new_dev


def take_handle(lab: GaneshaLab) -> bytes:
    with Nfs4Client("127.0.0.1", lab.port, timeout=10) as c:
        c.connect()
        fh = c.lookup("/data/file")
        assert c.read(fh, 0, 100) == CONTENT
        return fh


def read_with(lab: GaneshaLab, fh: bytes) -> bytes:
    with Nfs4Client("127.0.0.1", lab.port, timeout=10) as c:
        c.connect()
        return c.read(fh, 0, 100)


def first_node(ganesha: GaneshaLab, image: Image, tmp_path: Path) -> tuple[Path, str]:
    """The volume on its first loop device, mounted, holding data/file, initialised."""
    mp = tmp_path / "vol"
    mp.mkdir()
    dev_a = image.attach()
    subprocess.run(["mount", dev_a, str(mp)], check=True)
    (mp / "data").mkdir()
    (mp / "data" / "file").write_bytes(CONTENT)
    ganesha.cli("volume", "init", str(mp), "--server", "ganesha", "--id-range", "700-799", check=True)
    return mp, dev_a


def test_a_handle_survives_a_move_to_another_minor_number(ganesha, image, tmp_path):
    mp, dev_a = first_node(ganesha, image, tmp_path)
    ganesha.cli("export", "add", str(mp), "data", "--pseudo", "/data", "--client", "127.0.0.1", "--record-only",
                check=True)
    ganesha.cli("volume", "start", str(mp), check=True)
    fh = take_handle(ganesha)
    dev_b = takeover(ganesha, image, dev_a, mp)
    assert read_with(ganesha, fh) == CONTENT, f"handle from {dev_a} read through {dev_b}"


def test_with_fsid_device_the_handle_goes_stale_and_ganesha_ha_refuses_it(ganesha, image, tmp_path):
    """The control: Ganesha's fsid_device = true puts st_dev into the handle, so the same move
    answers NFS4ERR_STALE. ganesha-ha reads that setting from the node's Ganesha config and
    refuses a local export there unless --force (loudly), as it refuses fsid_type Dev/Device."""
    ganesha.daemon.stop()
    ganesha.daemon.__class__ = DeviceFsidGanesha
    ganesha.daemon.start()
    assert f"ganesha_config = {ganesha.daemon.config_path}\n" in ganesha.config.read_text()  # GaneshaLab's
    mp, dev_a = first_node(ganesha, image, tmp_path)
    refused = ganesha.cli("export", "add", str(mp), "data", "--pseudo", "/data", "--client", "127.0.0.1", "--record-only")
    assert refused.returncode == 2 and "fsid_device = true" in refused.stderr and "--force" in refused.stderr
    forced = ganesha.cli("export", "add", str(mp), "data", "--pseudo", "/data", "--client", "127.0.0.1",
                         "--record-only", "--force", check=True)
    assert "WARNING" in forced.stderr and "stale" in forced.stderr
    start = ganesha.cli("volume", "start", str(mp), check=True)
    assert "WARNING" in start.stderr and "fsid_device" in start.stderr
    fh = take_handle(ganesha)
    takeover(ganesha, image, dev_a, mp, DeviceFsidGanesha)
    with pytest.raises(NfsError) as err:
        read_with(ganesha, fh)
    assert err.value.name == "NFS4ERR_STALE"


def test_device_numbered_fsid_types_are_refused_unless_forced(ganesha, tmpfs_volume):
    vol = tmpfs_volume
    (vol / "d").mkdir()
    ganesha.cli("volume", "init", str(vol), "--server", "ganesha", check=True)
    for spec in ("VFS(fsid_type=Device)", "NULL(VFS(fsid_type=dev))"):
        proc = ganesha.cli("export", "add", str(vol), "d", "--client", "127.0.0.1", "--fsal", spec)
        assert proc.returncode == 2 and "NFS4ERR_STALE" in proc.stderr and "--force" in proc.stderr, proc.stderr
    for spec in ("VFS", "VFS(fsid_type=uuid)", "VFS(fsid_type=Two64)", "VFS(fsid_type=One64)"):
        ok = ganesha.cli("export", "add", str(vol), "d", "--client", "127.0.0.1", "--fsal", spec, "--record-only")
        assert ok.returncode == 0 and "WARNING" not in ok.stderr, ok.stderr
        ganesha.cli("export", "remove", str(vol), "d", "--record-only", check=True)
    forced = ganesha.cli("export", "add", str(vol), "d", "--client", "127.0.0.1", "--fsal", "VFS(fsid_type=Dev)",
                         "--force", "--record-only", check=True)
    assert "WARNING: handles of" in forced.stderr and "NFS4ERR_STALE" in forced.stderr
