"""The agent file in every layout: one rendering, and OCF_ERR_INSTALLED with a reason (never a
traceback) for every action when its interpreter or its package is gone or cannot be imported.

Each case installs the agent from a *copy* of the package (and, where the interpreter matters,
a copy of the interpreter's place), then moves or breaks the copy, as an administrator who
moves a checkout or removes a virtual environment would.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from ganesha_ha.install import AGENTS, agent_text

# every action Pacemaker, pcs or crmsh may call, with the OCF_RESKEY_CRM_meta_interval it gets
ACTIONS = [("start", "0"), ("stop", "0"), ("monitor", "0"), ("monitor", "5000"), ("validate-all", "0"),
           ("reload-agent", "0"), ("usage", "0"), ("meta-data", "0")]


def run(agent: Path, action: str, interval: str = "0") -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "OCF_ROOT": "/usr/lib/ocf",
           "OCF_RESOURCE_INSTANCE": "gha_inst", "OCF_RESKEY_server": "knfsd",
           "OCF_RESKEY_volume": "/nonexistent-gha-volume", "OCF_RESKEY_CRM_meta_interval": interval}
    return subprocess.run([str(agent), action], env=env, capture_output=True, text=True, timeout=60, cwd="/")


def copy_package(dest: Path) -> Path:
    shutil.copytree(ROOT / "ganesha_ha", dest / "ganesha_ha",
                    ignore=shutil.ignore_patterns("__pycache__", "lab"))
    return dest


def install(ocf_root: Path, python: str, root: Path) -> Path:
    agent = ocf_root / "resource.d" / "ganesha-ha" / "exports"
    agent.parent.mkdir(parents=True)
    agent.write_text(agent_text(python=python, root=str(root)))
    agent.chmod(0o755)
    return agent


def assert_not_installed(agent: Path, meta_data_works: bool, why: str) -> None:
    for action, interval in ACTIONS:
        proc = run(agent, action, interval)
        assert "Traceback" not in proc.stderr, proc.stderr
        if action == "meta-data" and meta_data_works:
            assert proc.returncode == 0 and '<resource-agent name="exports"' in proc.stdout, proc.stderr
            continue
        assert proc.returncode == 5, (action, proc.returncode, proc.stderr)
        reasons = [ln for ln in proc.stderr.splitlines() if ln.startswith("ocf-exit-reason:")]
        assert len(reasons) == 1 and why in reasons[0], (action, proc.stderr)
        assert proc.stdout == "", (action, proc.stdout)


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_ra_files_are_the_in_tree_rendering(name):
    """ra/exports and ra/notify are the template's in-tree form, so what the tests run is what installs."""
    assert (ROOT / "ra" / name).read_text() == agent_text(in_tree=True, name=name), \
        "regenerate: .venv/bin/python -c \"from ganesha_ha.install import agent_text; " \
        f"open('ra/{name}', 'w').write(agent_text(in_tree=True, name='{name}'))\""
    assert os.access(ROOT / "ra" / name, os.X_OK)


def test_agent_from_a_moved_checkout_answers_not_installed(tmp_path):
    pkg = copy_package(tmp_path / "checkout")
    agent = install(tmp_path / "ocf", sys.executable, pkg)
    ok = run(agent, "meta-data")
    assert ok.returncode == 0 and '<resource-agent name="exports"' in ok.stdout, ok.stderr
    assert run(agent, "monitor").returncode == 7, "works while the checkout is where it was"
    pkg.rename(tmp_path / "moved")
    assert_not_installed(agent, meta_data_works=False, why=f"{pkg}/ganesha_ha is missing")


def test_agent_whose_interpreter_is_gone_answers_not_installed(tmp_path):
    """A removed virtual environment: the interpreter named in the file no longer exists (the
    kernel would refuse a `#!` line naming it). meta-data still works: ocf.py needs only the
    standard library, so Debian's python3 prints it."""
    pkg = copy_package(tmp_path / "checkout")
    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").symlink_to(os.path.realpath(sys.executable))
    agent = install(tmp_path / "ocf", str(venv_bin / "python"), pkg)
    assert run(agent, "monitor").returncode == 7
    shutil.rmtree(tmp_path / "venv")
    assert_not_installed(agent, meta_data_works=True, why=f"{venv_bin / 'python'} or")


def test_agent_whose_package_cannot_be_imported_answers_not_installed(tmp_path):
    """The package is there but does not import (a half-copied or damaged install)."""
    pkg = copy_package(tmp_path / "checkout")
    agent = install(tmp_path / "ocf", sys.executable, pkg)
    (pkg / "ganesha_ha" / "agent.py").write_text("def broken(:\n")
    assert_not_installed(agent, meta_data_works=True, why="cannot be imported by")
    proc = run(agent, "start")
    assert "SyntaxError" in proc.stderr and str(pkg) in proc.stderr


@pytest.mark.parametrize("ocf_root, why", [("ocf-typo", "not an absolute path"),
                                           ("/nonexistent-gha-ocf", "no such directory")])
def test_install_agent_refuses_a_relative_or_missing_ocf_root(tmp_path, ocf_root, why):
    proc = subprocess.run([sys.executable, "-m", "ganesha_ha.cli", "install-agent", "--ocf-root", ocf_root],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and why in proc.stderr and "--ocf-root" in proc.stderr, proc.stderr
    assert list(tmp_path.iterdir()) == [], "nothing written under the current directory"
    assert not os.path.exists(ocf_root)


def test_install_agent_writes_an_agent_that_runs(tmp_path):
    (tmp_path / "ocf").mkdir()
    proc = subprocess.run([sys.executable, "-m", "ganesha_ha.cli", "install-agent", "--ocf-root",
                           str(tmp_path / "ocf")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    agent = tmp_path / "ocf" / "resource.d" / "ganesha-ha" / "exports"
    assert agent.stat().st_mode & 0o777 == 0o755
    md = run(agent, "meta-data")
    assert md.returncode == 0 and md.stdout.startswith('<?xml version="1.0"?>'), md.stderr
    assert run(agent, "monitor").returncode == 7, "a probe of a volume that is not there: not running"
    notify = agent.with_name("notify")
    md = run(notify, "meta-data")
    assert md.returncode == 0 and '<resource-agent name="notify"' in md.stdout, md.stderr
    assert run(notify, "monitor").returncode == 7, "a probe without parameters: not running"
