"""The README's plain virtual-environment install, as documented: a venv on Debian's python3
*without* the system site-packages, `pip install` of a copy of this tree (dbus-python is built
from source: the README's apt line provides its build dependencies), `ganesha-ha install-agent`,
and the agent answering OCF_ERR_INSTALLED with a reason once the venv is removed.

Behind --long: it needs PyPI (dbus-python, its meson build tools, configobj, pyroute2) and
takes 10-30 s.
"""
from __future__ import annotations

import shutil
import subprocess

import pytest

from conftest import IS_ROOT
from test_package import CLEAN_ENV, copy_tree

# the README's apt line for building dbus-python in a venv without system site-packages
BUILD_DEPS = ("python3-venv", "python3-dev", "build-essential", "pkg-config", "libdbus-1-dev", "libglib2.0-dev")

pytestmark = [pytest.mark.long, pytest.mark.skipif(not IS_ROOT, reason="needs root (as the README's install)")]


def installed(pkg: str) -> bool:
    q = subprocess.run(["dpkg-query", "-W", "-f", "${Status}", pkg], capture_output=True, text=True)
    return "install ok installed" in q.stdout


def test_plain_venv_install_works_and_a_removed_venv_answers_not_installed(tmp_path):
    missing = [p for p in BUILD_DEPS if not installed(p)]
    assert not missing, f"the README's apt line is not installed (scripts/install-deps): {missing}"
    src = tmp_path / "src"
    copy_tree(src)
    venv = tmp_path / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True, env=CLEAN_ENV)
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", str(src)], capture_output=True,
                         text=True, env=CLEAN_ENV, timeout=600, cwd=tmp_path)
    assert pip.returncode == 0, pip.stdout[-3000:] + pip.stderr[-3000:]
    where = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import dbus, configobj, ganesha_ha; print(dbus.__file__); print(ganesha_ha.__file__)"],
                           capture_output=True, text=True, env=CLEAN_ENV, cwd="/", check=True).stdout.split()
    assert all(p.startswith(f"{venv}/lib/") for p in where), where

    ocf_root = tmp_path / "ocf"
    ocf_root.mkdir()
    inst = subprocess.run([str(venv / "bin" / "ganesha-ha"), "install-agent", "--ocf-root", str(ocf_root)],
                          capture_output=True, text=True, env=CLEAN_ENV, cwd="/")
    assert inst.returncode == 0, inst.stderr
    agent = ocf_root / "resource.d" / "ganesha-ha" / "exports"
    env = CLEAN_ENV | {"OCF_RESKEY_server": "ganesha", "OCF_RESKEY_volume": "/nonexistent-gha-volume"}
    probe = subprocess.run([str(agent), "monitor"], capture_output=True, text=True, env=env, cwd="/")
    assert probe.returncode == 7, probe.stderr
    shutil.rmtree(venv)
    for action in ("start", "stop", "monitor", "meta-data"):
        gone = subprocess.run([str(agent), action], capture_output=True, text=True, env=env, cwd="/")
        assert gone.returncode == 5 and gone.stderr.startswith("ocf-exit-reason:"), (action, gone.stderr)
        assert "Traceback" not in gone.stderr
