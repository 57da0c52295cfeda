"""ganesha_ha.linux: the mount table, mount-point test, process liveness and libc calls,
against the real kernel (mount tests need root; the session runs in a private mount
namespace, see conftest.py)."""
from __future__ import annotations

import errno
import os
import subprocess
import sys
import time

import pytest

from conftest import needs_root
from ganesha_ha import linux


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as fh:
        data = fh.read()
    return data[data.rindex(")") + 2]


def test_a_zombie_is_dead_though_kill_0_finds_it():
    proc = subprocess.Popen(["true"])
    try:
        deadline = time.monotonic() + 10
        while _state(proc.pid) != "Z":            # exited, not reaped: a zombie
            assert time.monotonic() < deadline
            time.sleep(0.01)
        os.kill(proc.pid, 0)                      # what a kill(0) liveness test would count
        assert linux.pid_alive(proc.pid) is False
        assert linux.same_process(proc.pid, None) is False
    finally:
        proc.wait()
    assert linux.pid_alive(proc.pid) is False and linux.proc_starttime(proc.pid) is None


def test_a_running_process_is_named_by_pid_and_start_time():
    proc = subprocess.Popen(["sleep", "30"])
    try:
        start = linux.proc_starttime(proc.pid)
        assert linux.pid_alive(proc.pid) and isinstance(start, int) and start > 0
        assert linux.same_process(proc.pid, start) and linux.same_process(proc.pid, None)
        assert not linux.same_process(proc.pid, start + 1)   # a recycled PID would differ here
        assert linux.parent_pid(proc.pid) == os.getpid()
    finally:
        proc.kill()
        proc.wait()


def test_descendants_follow_the_process_tree():
    proc = subprocess.Popen([sys.executable, "-c", "import subprocess, sys; "
                             "p = subprocess.Popen(['sleep', '30']); print(p.pid, flush=True); p.wait()"],
                            stdout=subprocess.PIPE, text=True)
    try:
        grandchild = int(proc.stdout.readline())
        assert linux.descendants(os.getpid()) >= {proc.pid, grandchild}
        assert linux.descendants(proc.pid) == {grandchild}
    finally:
        os.kill(grandchild, 9)
        proc.wait()
        proc.stdout.close()


def test_mount_points_of_the_root_and_proc(tmp_path):
    assert linux.is_mountpoint("/") and linux.is_mountpoint("/proc")
    assert not linux.is_mountpoint(tmp_path)
    assert not linux.is_mountpoint(tmp_path / "absent")
    (tmp_path / "link").symlink_to("/proc")
    assert not linux.is_mountpoint(tmp_path / "link")       # a symbolic link is never one
    assert "/proc" in linux.mount_points() and "/" in linux.mount_points(os.getpid())
    assert linux.mount_points(2 ** 22 + 1) == []             # no such process


@needs_root
def test_a_bind_mount_onto_itself_is_a_mount_point(tmp_path):
    """What pyroute2 does to /run/netns: same file system, so st_dev cannot tell."""
    d = tmp_path / "self bind"            # a space: mountinfo writes it as \\040
    d.mkdir()
    assert not linux.is_mountpoint(d) and not os.path.ismount(d)
    linux.bind_mount(d, d)
    try:
        assert not os.path.ismount(d)
        assert linux.is_mountpoint(d) and str(d) in linux.mount_points()
        assert linux.is_mountpoint(d, pid=os.getpid())
        # a bind names its source: the directory's device and its path in that file system
        (dev, root, _), = [m for m in linux.mount_table() if m[2] == str(d)]
        st = os.stat(tmp_path)
        assert dev == f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
        assert root.endswith("/self bind") and str(d).endswith(root)
    finally:
        linux.umount(d, lazy=True)
    assert not linux.is_mountpoint(d)
    assert linux.mount_table(2 ** 22 + 1) == []


@needs_root
def test_libc_errors_say_what_failed(tmp_path):
    with pytest.raises(OSError) as err:
        linux.mount("gha-test", tmp_path / "absent", "tmpfs")
    assert err.value.errno == errno.ENOENT and f"mount gha-test on {tmp_path / 'absent'}" in str(err.value)
    with pytest.raises(OSError) as err:
        linux.umount(tmp_path)
    assert err.value.errno == errno.EINVAL and "umount" in str(err.value)


@needs_root
def test_private_binds_preexec_shows_the_bind_to_the_child_only(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_text("private\n")
    dst.write_text("host\n")
    out = subprocess.run(["cat", str(dst)], capture_output=True, text=True, check=True,
                         preexec_fn=linux.private_binds_preexec([(str(src), str(dst))]))
    assert out.stdout == "private\n" and dst.read_text() == "host\n"
    assert str(dst) not in linux.mount_points()
    with pytest.raises(subprocess.SubprocessError):          # a failed bind aborts the exec
        subprocess.run(["true"], preexec_fn=linux.private_binds_preexec([(str(src), str(tmp_path / "no"))]))


def test_run_capturing_stderr_gives_the_status_and_all_stderr_and_kills_at_the_timeout():
    """The agent's one program per monitor (linux.run_capturing_stderr, drain_until_exit):
    every byte of stderr (more than one pipe buffer), the exit status, a signal as a negative
    status, and a program still running at the timeout killed and reaped (TimeoutError)."""
    env = dict(os.environ)
    code = "import os, sys; os.write(2, b'x' * 200000); sys.exit(3)"
    rc, err = linux.run_capturing_stderr([sys.executable, "-c", code], env, 30)
    assert (rc, len(err), set(err)) == (3, 200000, {ord("x")})
    rc, err = linux.run_capturing_stderr(["/bin/sh", "-c", "kill -TERM $$"], env, 30)
    assert (rc, err) == (-15, b"")
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match="did not finish within 0.3 s"):
        linux.run_capturing_stderr(["/bin/sleep", "30"], env, 0.3)
    assert time.monotonic() - t0 < 5
    with pytest.raises(FileNotFoundError):
        linux.run_capturing_stderr(["/nonexistent/program"], env, 5)
