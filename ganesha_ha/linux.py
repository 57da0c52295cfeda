"""What ganesha-ha, its lab and its tests ask the Linux kernel directly: mounts, namespaces,
processes. One place, so that each fact is read one way.

- **Mounts and namespaces** through libc (ctypes): mount(2), umount2(2), unshare(2),
  setns(2), prctl(PR_SET_CHILD_SUBREAPER). ctypes is imported on the first call, never at
  import: the resource agent imports this module on its monitor path, which needs none of it.
- **The mount table** from /proc/<pid>/mountinfo (proc(5)): the kernel's own list, which also
  knows bind mounts of a directory onto itself (pyroute2's /run/netns) that a st_dev
  comparison cannot see.
- **Processes** from /proc/<pid>/stat (proc(5)): a zombie (state Z) or a dying task (X) is
  dead, whatever kill(pid, 0) says; field 22 (start time) tells a process from a later one
  that got the same PID.
The network state under /proc/net (sockets, listeners, local addresses) is linux_net.py's.

Errors of libc calls are raised as OSError with the errno and what was attempted.
"""
from __future__ import annotations

import os
import time

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from typing import Any, Callable, Iterable, Sequence

# <linux/sched.h>
CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWNET = 0x40000000
# <sys/mount.h>
MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
# <linux/prctl.h>
PR_SET_CHILD_SUBREAPER = 36

_libc: Any = None


def libc() -> Any:
    """The C library (ctypes.CDLL, errno kept), with the argument types of the calls used here."""
    global _libc
    if _libc is None:
        import ctypes

        lib = ctypes.CDLL(None, use_errno=True)
        cp, ul = ctypes.c_char_p, ctypes.c_ulong
        lib.mount.argtypes = [cp, cp, cp, ul, ctypes.c_void_p]
        lib.umount2.argtypes = [cp, ctypes.c_int]
        lib.unshare.argtypes = [ctypes.c_int]
        lib.setns.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.prctl.argtypes = [ctypes.c_int, ul, ul, ul, ul]
        _libc = lib
    return _libc


def check(rc: int, what: str) -> None:
    """Raise OSError(errno, '<what>: <strerror>') when a libc call returned non-zero."""
    if rc != 0:
        import ctypes

        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _b(value: str | os.PathLike[str] | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


# ---- mounts and namespaces ------------------------------------------------------------------

def mount(source: str | os.PathLike[str] | None, target: str | os.PathLike[str],
          fstype: str | None = None, flags: int = 0, data: str | None = None) -> None:
    """mount(2). Raises OSError."""
    check(libc().mount(_b(source), _b(target), _b(fstype), flags, _b(data)), f"mount {source} on {target}")


def bind_mount(source: str | os.PathLike[str], target: str | os.PathLike[str], *,
               recursive: bool = False) -> None:
    """mount --bind (--rbind with `recursive`). Raises OSError."""
    mount(source, target, None, MS_BIND | (MS_REC if recursive else 0))


def umount(target: str | os.PathLike[str], lazy: bool = False) -> None:
    """umount2(2); `lazy` is MNT_DETACH (gone from the tree now, freed when unused). Raises OSError."""
    check(libc().umount2(_b(target), MNT_DETACH if lazy else 0), f"umount {target}")


def unshare(flags: int) -> None:
    """unshare(2) of the calling thread (CLONE_NEWNS needs a single-threaded process)."""
    check(libc().unshare(flags), f"unshare({flags:#x})")


def setns(fd: int, nstype: int) -> None:
    """setns(2): join the namespace open at `fd` (a network namespace: this thread only)."""
    check(libc().setns(fd, nstype), f"setns({nstype:#x})")


def setns_path(path: str | os.PathLike[str], nstype: int) -> None:
    """setns(2) into the namespace file `path` (/run/netns/NAME, /proc/PID/ns/mnt, ...)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        check(libc().setns(fd, nstype), f"setns {path}")
    finally:
        os.close(fd)


def make_mounts_private() -> None:
    """mount --make-rprivate /: nothing mounted from now on propagates to other namespaces."""
    check(libc().mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")


def enter_private_mount_namespace() -> None:
    """unshare(CLONE_NEWNS), then make every mount private: whatever this process mounts
    afterwards is invisible to the host and goes with the namespace. Single-threaded only."""
    check(libc().unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    make_mounts_private()


def private_binds_preexec(binds: Sequence[tuple[str, str]]) -> Callable[[], None]:
    """A subprocess preexec_fn: new mount namespace, every mount private, then each
    `(src, dst)` bind-mounted. Propagation is private *before* the first bind and a failure
    aborts the exec, so a bind never shows in the parent's namespace. The work that can be
    done before fork (libc, encoding) is done here."""
    lib = libc()
    pairs = [(os.fsencode(s), os.fsencode(d)) for s, d in binds]

    def preexec() -> None:
        check(lib.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
        check(lib.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
        for src, dst in pairs:
            check(lib.mount(src, dst, None, MS_BIND, None), "mount --bind")

    return preexec


def set_child_subreaper() -> None:
    """prctl(PR_SET_CHILD_SUBREAPER): orphaned descendants are re-parented to this process."""
    check(libc().prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "prctl(PR_SET_CHILD_SUBREAPER)")


# ---- the mount table ------------------------------------------------------------------------

def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as \\ooo (octal)."""
    if "\\" not in field:
        return field
    import re

    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mount_table(pid: int | str = "self") -> list[tuple[str, str, str]]:
    """The mounts in the mount namespace of process `pid`, in the kernel's order, each as
    (device "major:minor", root: the path inside that file system the mount shows, mount
    point): fields 3, 4 and 5 of its mountinfo. A bind mount of a directory has the
    directory's path as its root (with "//deleted" appended once it is removed). [] when
    it cannot be read (the process is gone)."""
    try:
        with open(f"/proc/{pid}/mountinfo", encoding="utf-8", errors="surrogateescape") as fh:
            return [(f[2], _unescape(f[3]), _unescape(f[4])) for f in map(str.split, fh) if len(f) > 4]
    except OSError:
        return []


def mount_points(pid: int | str = "self") -> list[str]:
    """Mount points in the mount namespace of process `pid` (field 5 of its mountinfo), in
    the kernel's order; [] when it cannot be read (the process is gone)."""
    return [point for _, _, point in mount_table(pid)]


def is_mountpoint(path: str | os.PathLike[str], pid: int | None = None) -> bool:
    """True when `path` is the root of a mount (not the bare directory under one).

    In this process's namespace (`pid` None): a file system root by st_dev (os.path.ismount,
    which needs no file read), or any mount in the mount table, bind mounts of a directory
    onto itself included; a symbolic link is never a mount point. With `pid`: in that
    process's mount table, `path` as the kernel spells it there.
    """
    p = os.fspath(path)
    if pid is None:
        try:
            if os.path.ismount(p):
                return True
            if os.path.islink(p) or not os.path.isdir(p):
                return False
        except (OSError, ValueError):
            return False
        head, tail = os.path.split(os.path.abspath(p))
        p = os.path.join(os.path.realpath(head), tail)
    p = os.path.normpath(p) if p != "/" else p
    return p in mount_points("self" if pid is None else pid)


# ---- processes ------------------------------------------------------------------------------

def _stat(pid: int) -> list[bytes] | None:
    """The fields of /proc/PID/stat after the command name (field 3, the state, first)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
        return data[data.rindex(b")") + 2:].split()
    except (OSError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    """The process exists and is neither a zombie (Z) nor dying (X)."""
    f = _stat(pid)
    return bool(f) and f[0] not in (b"Z", b"X")


def is_stopped(pid: int) -> bool:
    """The process is stopped (T: SIGSTOP, SIGTSTP) or stopped by a tracer (t): it runs no
    code until SIGCONT, answers nothing, and a SIGTERM stays pending; only SIGKILL ends it."""
    f = _stat(pid)
    return bool(f) and f[0] in (b"T", b"t")


def comm(pid: int) -> str | None:
    """The process's name (/proc/PID/comm, at most 15 characters), None when it is gone."""
    try:
        with open(f"/proc/{pid}/comm", "rb") as fh:
            return fh.read().decode("utf-8", "replace").strip()
    except OSError:
        return None


def proc_starttime(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (clock ticks after boot): with the PID, it names one
    process for its whole life. None when the process is gone."""
    f = _stat(pid)
    try:
        return int(f[19]) if f else None
    except (IndexError, ValueError):
        return None


def process_age(pid: int) -> float | None:
    """Seconds since the process `pid` began (its fork: an exec keeps the start time), from
    its starttime and CLOCK_BOOTTIME, which proc(5) counts it in; None when it is gone."""
    import time

    ticks = proc_starttime(pid)
    if ticks is None:
        return None
    return time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")


def same_process(pid: int, starttime: int | None) -> bool:
    """`pid` still runs and is the process that had `starttime` (not a recycled PID)."""
    return pid_alive(pid) and (starttime is None or proc_starttime(pid) == starttime)


def parent_pid(pid: int) -> int | None:
    f = _stat(pid)
    try:
        return int(f[1]) if f else None
    except (IndexError, ValueError):
        return None


def all_pids() -> list[int]:
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def descendants(root: int, pids: Iterable[int] | None = None) -> set[int]:
    """Every process below `root` in the process tree, as /proc shows it now."""
    children: dict[int, list[int]] = {}
    for pid in (all_pids() if pids is None else pids):
        pp = parent_pid(pid)
        if pp is not None:
            children.setdefault(pp, []).append(pid)
    out: set[int] = set()
    todo = [root]
    while todo:
        for c in children.get(todo.pop(), ()):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def cmdline(pid: int) -> list[str]:
    """The arguments of process `pid` (/proc/PID/cmdline); [] when it is gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            raw = fh.read()
    except OSError:
        return []
    return [os.fsdecode(a) for a in raw.split(b"\0")[:-1]] if raw else []


def lock_holder(path: str | os.PathLike[str]) -> int | None:
    """The PID of the process holding a POSIX write lock (fcntl F_SETLK) on the file at
    `path`, as the daemons that lock their pid file take it (ganesha.nfsd: src/MainNFSD/
    nfs_main.c); None when the file is absent or nobody holds a lock on it. A lock dies with
    its process, so the holder is alive whatever the file says: a pid file naming another
    (stale) PID is no evidence, its lock is (fcntl(2), F_GETLK)."""
    import fcntl
    import struct

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        # struct flock on LP64 Linux: short l_type, short l_whence, off_t l_start, off_t l_len,
        # pid_t l_pid (native alignment pads after the shorts, as the C compiler does)
        query = struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        answer = fcntl.fcntl(fd, fcntl.F_GETLK, query)
    except OSError:
        return None
    finally:
        os.close(fd)
    l_type, _, _, _, l_pid = struct.unpack("hhqqi", answer)
    return None if l_type == fcntl.F_UNLCK else l_pid


# /proc/thread-self/net is the network namespace of the calling *thread* (proc(5)); /proc/net
# is that of the process's main thread. The same in a single-threaded agent; different in a
# test or lab thread that entered a node's namespace with setns(2). Read by linux_net.py; here
# because NSM's stores take it as a default, and the agent imports them on every call.
PROC_NET = "/proc/thread-self/net"


def run_capturing_stderr(argv: Sequence[str], env: dict[str, str], timeout: float) -> tuple[int, bytes]:
    """Run a program with stdin and stdout on /dev/null: (its exit status, all its stderr),
    within `timeout` s, else it is killed and TimeoutError raised. OSError (FileNotFoundError,
    PermissionError) when it cannot be started. Never through a shell.

    posix_spawn(3) and a pidfd (Linux 5.3) instead of subprocess: the resource agent runs one
    program (exportfs) per monitor, and importing subprocess (selectors, threading, signal)
    cost it ~8 ms of a ~50 ms call. Descriptors are not inherited (Python opens them
    O_CLOEXEC); the stderr pipe's write end is dup'ed onto fd 2 in the child only. A
    negative status is the signal that ended the program (as subprocess reports it)."""
    read_end, write_end = os.pipe()
    try:
        pid = os.posix_spawn(argv[0], list(argv), env, file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
            (os.POSIX_SPAWN_DUP2, write_end, 2)])
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    try:
        err = drain_until_exit(read_end, pid, timeout, argv[0])
    except BaseException:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
        raise
    finally:
        os.close(read_end)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), err


def drain_until_exit(fd: int, pid: int, timeout: float, what: str) -> bytes:
    """All that `fd` (the read end of child `pid`'s stderr pipe) gives until EOF, then the
    wait until the child has exited, within `timeout` s, else TimeoutError naming `what`. The
    child is not reaped: its owner does that (waitpid, Popen.wait), and kills it on a timeout.

    The exit is waited for on a pidfd (Linux 5.3), which wakes the moment the child exits;
    subprocess's timed wait polls waitpid with sleeps of 1 ms and more, which one monitor in
    two paid (measured)."""
    import select

    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    pidfd = os.pidfd_open(pid)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while True:   # until EOF: a program that exits closes its stderr
            left = deadline - time.monotonic()
            if left <= 0 or not poller.poll(left * 1000):
                raise TimeoutError(f"{what} did not finish within {timeout:g} s")
            data = os.read(fd, 65536)
            if not data:
                break
            chunks.append(data)
        exited = select.poll()
        exited.register(pidfd, select.POLLIN)
        left = deadline - time.monotonic()
        if left <= 0 or not exited.poll(left * 1000):
            raise TimeoutError(f"{what} did not finish within {timeout:g} s")
    finally:
        os.close(pidfd)
    return b"".join(chunks)


def terminate(pid: int, starttime: int | None, grace: float, kill_wait: float = 5.0) -> tuple[bool, bool]:
    """SIGTERM the process `pid` (that had `starttime`: never a recycled PID), wait up to
    `grace` seconds for it to be gone, then SIGKILL and wait up to `kill_wait` more.
    Returns (gone, killed): whether it is gone now, and whether SIGKILL was needed. A zombie
    counts as gone (it holds no file, socket or lock any more)."""
    import signal
    import time

    killed = False
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, kill_wait)):
        if not same_process(pid, starttime):
            return True, killed
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True, killed
        killed = sig == signal.SIGKILL
        deadline = time.monotonic() + wait
        while same_process(pid, starttime) and time.monotonic() < deadline:
            time.sleep(0.02)
    return not same_process(pid, starttime), killed
