"""What the two labs share: a run's identity and files, its report, progress lines, signals,
and the run itself (set up, fail over N times, check, then keep or tear down).

The direct lab (direct_lab.py: the agent driven by hand) and the cluster lab
(cluster_lab.py: Pacemaker decides) differ in how a volume moves; `LabRun.run()` is the
same for both. A subclass says how to set up, what its i-th failover is, what the last
check is, and how it is kept (--keep) or torn down; the base makes sure that teardown runs
whatever happens (an error, Ctrl-C, SIGTERM or SIGHUP), and that a second Ctrl-C cannot
stop it.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator

from .netns import LabNet

RUN_ROOT = Path("/run/ganesha-ha-lab")        # every lab's state file
WORK_ROOT = Path("/var/tmp/ganesha-ha-lab")    # every lab's work dir; not under /run: nodes mount their own
GANESHA_GRACE_PERIOD = 90                      # Ganesha's default Grace_Period (src/include/gsh_config.h)
NEW_OPEN_TARGET_S = 5.0                        # issue 16: new opens back within 5 s (Grace_Period 90, NLM off)
BREAKS = {"server-scope": "the nodes present different NFSv4.1 server scopes (no Server_Scope set: "
                          "each Ganesha presents its own '<host name>_NFS-Ganesha')"}


@dataclass
class LabOptions:
    """What both labs take. `nfs_version` is the NFSv4 clients' ("4.0" or "4.1");
    `grace_period` Ganesha's Grace_Period in seconds (its default is 90); `nlm`: Ganesha
    with NFSv3 + NLM (rpcbind and rpc.statd per node) and an NFSv3 client holding a lock."""

    server: str = "ganesha"
    breaks: tuple[str, ...] = ()
    keep: bool = False
    grace_period: int = 5
    nfs_version: str = "4.1"
    nlm: bool = False

    @property
    def minorversion(self) -> int:
        return {"4.0": 0, "4.1": 1}[self.nfs_version]

    @property
    def lease_lifetime(self) -> int:
        """The lab's Lease_Lifetime: 5 s, whatever the grace period. Ganesha's reaper, which
        is what lifts grace early once every client with a record said RECLAIM_COMPLETE, runs
        every Lease_Lifetime/2 below 20 s, else every 10 s (nfs_reaper_thread.c reaper_init):
        every 2.5 s here, so a lift lands well inside the 5 s target (with Lease_Lifetime 10
        it came 5.1 s after the IP, measured: one tick). Ganesha's default Lease_Lifetime 60
        means up to 10 s. The lab's clients renew every 1.5 s."""
        return 5

    def new_open_limit(self) -> float | None:
        """How soon after a moved volume is served again its clients must open new files:
        NEW_OPEN_TARGET_S where grace can end early, None (no limit) where it cannot."""
        return NEW_OPEN_TARGET_S if self.early_lift_expected() else None

    def early_lift_expected(self) -> bool:
        """Whether grace can end before Grace_Period: NLM off (with NLM on Ganesha never lifts
        early, nfs4_recovery.c nfs_try_lift_grace) and only NFSv4.1 clients (a 4.0 record pins
        grace: no RECLAIM_COMPLETE in 4.0); worth a check only when the period is long."""
        return not self.nlm and self.nfs_version == "4.1" and self.grace_period > 2 * self.lease_lifetime


class Interrupted(Exception):
    """SIGTERM/SIGHUP while the lab runs: clean up as for Ctrl-C."""


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP raise Interrupted in this process, so a lab that is
    told to stop tears down as for Ctrl-C; forked helpers (pyroute2 forks one per netns
    creation) die of the signal as usual."""
    owner = os.getpid()

    def on_term(signum, frame):
        if os.getpid() != owner:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise Interrupted(signal.Signals(signum).name)

    old = {s: signal.signal(s, on_term) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """A second Ctrl-C must not stop the cleanup."""
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


class Progress:
    """One short line per step on stderr, with the elapsed time; waits update in place."""

    def __init__(self, stream=None, enabled: bool = True) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.t0 = time.monotonic()
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._open = False

    def __call__(self, msg: str) -> None:
        if not self.enabled:
            return
        self._close_line()
        self.stream.write(f"[{time.monotonic() - self.t0:5.1f}s] {msg}\n")
        self.stream.flush()

    def ticker(self, msg: str) -> Callable[[str], None]:
        """For a wait: returns tick(extra) that refreshes the line (on a TTY) or stays quiet."""
        self(msg) if not self.tty else None

        def tick(extra: str) -> None:
            if not self.enabled or not self.tty:
                return
            self.stream.write(f"\r[{time.monotonic() - self.t0:5.1f}s] {msg} {extra}\033[K")
            self.stream.flush()
            self._open = True
        return tick

    def _close_line(self) -> None:
        if self._open:
            self.stream.write("\n")
            self._open = False


class LabRun:
    """One run of a lab. `run()` returns the report; it always tears down unless kept.

    Subclasses set `ID_PREFIX` and implement `setup()`, `planned()`, `one_failover(i)`,
    `final_check()`, `node_states()`, `keep_info()` and `teardown()`; `opts` is a LabOptions.
    """

    ID_PREFIX: ClassVar[str] = "l"
    ROOT: ClassVar[Path] = WORK_ROOT

    def __init__(self, opts: Any, progress: Progress | None = None, *,
                 nodes: tuple[str, ...] = ("a", "b")) -> None:
        self.opts = opts
        self.say = progress or Progress(enabled=False)
        self.run_id = self.ID_PREFIX + secrets.token_hex(2)
        self.workdir = self.ROOT / self.run_id
        self.state_path = RUN_ROOT / f"{self.run_id}.json"
        self.net = LabNet(self.run_id, subnet=f"10.213.{secrets.randbelow(200) + 20}", nodes=nodes)
        self.images: list[Path] = []          # the volumes' images (their loop devices go at teardown)
        self.report: dict[str, Any] = {
            "ok": False, "server": opts.server, "run_id": self.run_id, "break": list(opts.breaks),
            "grace_period_s": opts.grace_period, "failovers": [], "problems": [],
        }
        if opts.server == "ganesha":
            self.report.update({"nfs_version": opts.nfs_version, "nlm": opts.nlm,
                                "lease_lifetime_s": opts.lease_lifetime,
                                "server_scope_set": self.server_scope, "server_identity": {}})

    @property
    def server_scope(self) -> str | None:
        """The one NFSv4 Server_Scope every node of this lab presents (the README recipe's
        rule: one scope for the cluster); None with --break server-scope."""
        return None if "server-scope" in self.opts.breaks else f"gha-{self.run_id}"

    def seen_server(self, node: str, identity: dict[str, str] | None, volume: str | None = None) -> None:
        """Keep what `node` presented to an NFSv4.1 client (EXCHANGE_ID owner and scope);
        with `volume` (a Ganesha instance per volume: each its own scope), as "<volume>@<node>"."""
        if identity is not None:
            self.report["server_identity"][f"{volume}@{node}" if volume else node] = identity

    # ---- what a lab says ----------------------------------------------------------------
    def setup(self) -> None:
        raise NotImplementedError

    def planned(self) -> int:
        """How many failovers this run means to make."""
        raise NotImplementedError

    def one_failover(self, i: int) -> dict[str, Any]:
        """Failover `i` (from 1): its evidence, with "ok"."""
        raise NotImplementedError

    def final_check(self) -> None:
        """After the last failover (or the first failed one): checks over the whole run."""

    def node_states(self) -> list[dict[str, Any]]:
        """Per node: {"name", "pids": [[pid, start time], ...]} in start order, for `lab down`."""
        raise NotImplementedError

    def can_keep(self) -> bool:
        return True

    def keep_info(self) -> dict[str, Any]:
        raise NotImplementedError

    def teardown(self) -> list[str]:
        """Stop and remove everything; return what is left behind (empty when all went)."""
        raise NotImplementedError

    # ---- bookkeeping ----------------------------------------------------------------------
    def problem(self, text: str) -> None:
        self.report["problems"].append(text)

    def save_state(self) -> None:
        """What 'ganesha-ha lab down' needs if this process dies before its teardown."""
        RUN_ROOT.mkdir(parents=True, exist_ok=True, mode=0o700)
        state = {"run_id": self.run_id, "lab_pid": os.getpid(), "workdir": str(self.workdir),
                 "images": [str(i) for i in self.images], "netns": self.net.created,
                 "netns_dir_was_mount": self.net.netns_dir_was_mount, "nodes": self.node_states()}
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        os.replace(tmp, self.state_path)

    # ---- the run --------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        t0 = time.monotonic()
        n = self.planned()
        interrupted = False
        stack = contextlib.ExitStack()
        stack.enter_context(interruptible())
        try:
            self.setup()
            self.report["setup_s"] = round(time.monotonic() - t0, 2)
            for i in range(1, n + 1):
                fo = self.one_failover(i)
                self.report["failovers"].append(fo)
                if not fo["ok"]:
                    if i < n:
                        self.problem(f"stopped after failover {i} failed")
                    break
            self.final_check()
        except (KeyboardInterrupt, Interrupted) as exc:
            interrupted = True
            self.report["interrupted"] = True
            self.problem(f"interrupted ({exc or type(exc).__name__})")
            self.say("interrupted: cleaning up")
        except Exception as exc:
            self.problem(f"lab failed: {type(exc).__name__}: {' '.join(str(exc).split())[:3000]}")
            self.say(f"error: {' '.join(str(exc).split())[:300]}")
        finally:
            with stack, shielded():
                if self.opts.keep and not interrupted and self.can_keep():
                    self.report["kept"] = self.keep_info()
                else:
                    t_down = time.monotonic()
                    self.report["left_behind"] = self.teardown()
                    self.report["teardown_s"] = round(time.monotonic() - t_down, 2)
        self.report["total_s"] = round(time.monotonic() - t0, 2)
        fos = self.report["failovers"]
        self.report["ok"] = (not self.report["problems"] and len(fos) == n
                             and all(f["ok"] for f in fos) and not self.report.get("left_behind"))
        return self.report
