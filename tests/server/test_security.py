"""Security (issue 7, point 5) beyond what test_registry covers: files ganesha-ha creates
have safe modes whatever the caller's umask; the volume's lock file is a state file like the
others (no symlink, not foreign, not writable by others); a read-only volume is an answer,
not a crash; and nothing in the package runs through a shell.

(The classic agent mode's refusal of directories outside the volume or through symbolic
links is in test_agent_input.py; `export add`'s in test_ganesha_live.py and below.)
"""
from __future__ import annotations

import ast
import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, needs_root

PACKAGE = ROOT / "ganesha_ha"


def cli(config: Path, *args: str, umask: int | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ganesha_ha.cli", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=60,
                          preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)


def assert_one_line(proc: subprocess.CompletedProcess, code: int, fragment: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert proc.stderr.count("\n") == 1 and fragment in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def loose_modes(*roots: Path) -> list[str]:
    """Every file or directory under `roots` that group or others may write."""
    out = []
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in [*dirnames, *filenames, ""]:
                path = Path(dirpath) / name
                st = os.lstat(path)
                if not stat.S_ISLNK(st.st_mode) and st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                    out.append(f"{path} {stat.S_IMODE(st.st_mode):o}")
    return sorted(set(out))


@needs_root
def test_files_are_created_safe_under_a_hostile_umask(ganesha, tmpfs_volume):
    """umask 000 (a careless service manager): the registry, its lock, the node-local state,
    Ganesha's EXPORT blocks and the client-recovery records restored for a take-over are
    still never writable by group or others."""
    vol = tmpfs_volume
    (vol / "data").mkdir(mode=0o755)
    os.chmod(vol / "data", 0o755)
    proc = cli(ganesha.config, "volume", "init", str(vol), "--server", "ganesha", "--id-range", "900-999", umask=0)
    assert proc.returncode == 0, proc.stderr
    # client records saved by the node that had the volume before (what `monitor` writes)
    records = [{"path": "node0", "type": "dir"},
               {"path": "node0/client-1", "type": "file", "data": base64.b64encode(b"rec").decode()}]
    saved = vol / ".ganesha-ha" / "ganesha-recovery.json"
    fd = os.open(saved, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"records": records}, fh)
    for args in (("volume", "start", str(vol), "--ip", "192.0.2.10"),
                 ("export", "add", str(vol), "data", "--client", "127.0.0.1")):
        proc = cli(ganesha.config, *args, umask=0)
        assert proc.returncode == 0, proc.stderr
    state = vol / ".ganesha-ha"
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o700
    for name in ("registry.json", "lock"):
        assert stat.S_IMODE(os.stat(state / name).st_mode) == 0o600, name
    takeover = ganesha.recovery_root / "192.0.2.10"
    assert (takeover / "v4recov" / "node0" / "client-1").read_bytes() == b"rec"
    assert loose_modes(state, ganesha.workdir / "run", takeover) == []


@needs_root
@pytest.mark.parametrize("how", ["symlink", "world-writable", "foreign"])
def test_an_unsafe_lock_file_is_refused(tmpfs_volume, tmp_path, how):
    """Anyone who can open the lock can hold it (and stall every change and start); a
    symlinked lock would create or lock a file elsewhere. Refused like the other state files."""
    config = tmp_path / "gha.conf"
    config.write_text(f"[node]\nruntime_dir = {tmp_path / 'run'}\n")
    vol = tmpfs_volume
    (vol / "d").mkdir()
    assert cli(config, "volume", "init", str(vol), "--server", "knfsd").returncode == 0
    lock = vol / ".ganesha-ha" / "lock"
    lock.unlink(missing_ok=True)
    if how == "symlink":
        os.symlink(tmp_path / "elsewhere", lock)
    else:
        lock.touch(mode=0o600)
        if how == "world-writable":
            os.chmod(lock, 0o666)
        else:
            os.chown(lock, 65534, 65534)
    before = (vol / ".ganesha-ha" / "registry.json").read_bytes()
    proc = cli(config, "export", "add", str(vol), "d", "--client", "127.0.0.1")
    assert_one_line(proc, 3, str(lock))
    assert (vol / ".ganesha-ha" / "registry.json").read_bytes() == before
    assert not (tmp_path / "elsewhere").exists()


@needs_root
def test_read_only_volume_is_an_answer(tmp_path):
    """ext4 remounts itself read-only on errors: every change is refused in one line, and
    what can be read still reads."""
    from ganesha_ha import linux

    config = tmp_path / "gha.conf"
    config.write_text(f"[node]\nruntime_dir = {tmp_path / 'run'}\n")
    vol = tmp_path / "ro"
    vol.mkdir()
    linux.mount("gha-test-ro", str(vol), "tmpfs", 0, "size=1m,mode=0755")
    try:
        (vol / "d").mkdir()
        (vol / "e").mkdir()
        assert cli(config, "volume", "init", str(vol), "--server", "knfsd").returncode == 0
        assert cli(config, "export", "add", str(vol), "d", "--client", "127.0.0.1").returncode == 0
        linux.mount("gha-test-ro", str(vol), None, linux.MS_REMOUNT | linux.MS_RDONLY, None)
        for args in (("export", "add", str(vol), "e", "--client", "127.0.0.1"),
                     ("export", "remove", str(vol), "d")):
            assert_one_line(cli(config, *args), 3, "Read-only file system")
        proc = cli(config, "export", "list", str(vol))
        assert proc.returncode == 0 and "127.0.0.1" in proc.stdout, proc.stderr
    finally:
        linux.umount(str(vol), lazy=True)


# ---- nothing runs through a shell ---------------------------------------------------------------

SHELLS = {"sh", "bash", "dash", "/bin/sh", "/bin/bash", "/usr/bin/sh", "/usr/bin/bash"}


def shell_uses(source: str, filename: str) -> list[str]:
    """Calls that hand a command line to a shell: shell=True (or anything but a literal
    False), os.system/os.popen/os.exec*p with a shell, subprocess.getoutput/getstatusoutput,
    and argv lists that start a shell with -c."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Call):
            func = ast.unparse(node.func)
            where = f"{filename}:{node.lineno}: {ast.unparse(node)[:100]}"
            if func in ("os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput",
                        "system", "popen", "getoutput", "getstatusoutput"):
                found.append(where)
            for kw in node.keywords:
                if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                    found.append(where)
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
            if any(i in SHELLS for i in items) and "-c" in items:
                found.append(f"{filename}:{node.lineno}: {ast.unparse(node)[:100]}")
    return found


def test_the_shell_check_sees_what_it_must():
    """The guard below can fail: each of these is found."""
    bad = ("import os, subprocess\nos.system('x')\nos.popen('x')\nsubprocess.run('x', shell=True)\n"
           "subprocess.run(['sh', '-c', 'x'])\nsubprocess.getoutput('x')\nsubprocess.run(a, shell=flag)\n")
    assert len(shell_uses(bad, "bad.py")) == 6
    assert shell_uses("import subprocess\nsubprocess.run(['exportfs', '-u', x], shell=False)\n", "ok.py") == []


def test_nothing_in_the_package_runs_through_a_shell():
    sources = sorted(PACKAGE.rglob("*.py"))
    assert len(sources) > 20
    found = [hit for path in sources for hit in shell_uses(path.read_text(), str(path.relative_to(ROOT)))]
    assert found == []


@needs_root
@pytest.mark.parametrize("case", ["symlink-out", "symlink-in", "symlinked-parent", "absolute-outside", "dotdot"])
def test_export_add_refuses_directories_outside_the_volume(tmpfs_volume, tmp_path, case):
    config = tmp_path / "gha.conf"
    config.write_text(f"[node]\nruntime_dir = {tmp_path / 'run'}\n")
    vol = tmpfs_volume
    (vol / "real" / "sub").mkdir(parents=True)
    os.symlink("/etc", vol / "out")
    os.symlink(vol / "real", vol / "in")
    assert cli(config, "volume", "init", str(vol), "--server", "knfsd").returncode == 0
    directory, fragment = {
        "symlink-out": ("out", "outside the volume"),
        "symlink-in": ("in", "goes through a symbolic link"),
        "symlinked-parent": (str(vol / "in" / "sub"), "goes through a symbolic link"),
        "absolute-outside": ("/etc", "not inside the volume"),
        "dotdot": ("real/../../etc", "'..'"),
    }[case]
    before = (vol / ".ganesha-ha" / "registry.json").read_bytes()
    assert_one_line(cli(config, "export", "add", str(vol), directory, "--client", "127.0.0.1"), 2, fragment)
    assert (vol / ".ganesha-ha" / "registry.json").read_bytes() == before
