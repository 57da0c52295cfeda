"""The shared volume's stand-in: a sparse ext4 image on a loop device (the role DRBD plays).

Loop devices are found from /sys by their backing file, so a lab (or `lab down`) detaches
exactly the devices of its own images and needs no state besides the image paths.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

from .procs import wait_until


def make_volume_image(image: Path, size: int, label: str) -> str:
    """Create a sparse `size`-byte image, make an ext4 labelled `label` on it and attach it
    to a free loop device; returns the device (/dev/loopN). Raises CalledProcessError."""
    with open(image, "wb") as fh:
        fh.truncate(size)
    subprocess.run(["mkfs.ext4", "-F", "-q", "-L", label, str(image)], check=True,
                   capture_output=True, timeout=60)
    return subprocess.run(["losetup", "--find", "--show", str(image)], check=True,
                          capture_output=True, text=True, timeout=30).stdout.strip()


def loop_devices_of(image: Path) -> list[str]:
    """Loop devices whose backing file is `image` (from /sys, no program needed)."""
    out = []
    for bf in Path("/sys/block").glob("loop*/loop/backing_file"):
        try:
            text = bf.read_text().strip()
        except OSError:
            continue
        if text.removesuffix(" (deleted)") == str(image):
            out.append(f"/dev/{bf.parent.parent.name}")
    return sorted(out)


def detach_loops(image: Path) -> list[str]:
    """Detach every loop device of `image`; returns what would not go ("loop device /dev/loopN")."""
    left = []
    for dev in loop_devices_of(image):
        subprocess.run(["losetup", "-d", dev], capture_output=True, timeout=30)
        wait_until(lambda: dev not in loop_devices_of(image), 5.0)
        if dev in loop_devices_of(image):
            left.append(f"loop device {dev}")
    return left
