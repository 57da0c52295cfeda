"""The life cycle every lab thread in a network namespace shares (lab/nsthread.NetnsLoop):
what start() raises when the namespace cannot be entered, and how callables handed to the
thread come back (result, their own error, a timeout). No root: the namespace that does not
exist fails at open(2); where a thread must get in, setns is faked (the edge: linux.setns_path)."""
from __future__ import annotations

import threading
import time

import pytest

from ganesha_ha import linux
from ganesha_ha.lab.labclient import LabClient
from ganesha_ha.lab.nsthread import NetnsWorker, in_netns
from ganesha_ha.lab.openprobe import NewOpenProbe

MISSING = "gha-no-such-netns"


def test_a_namespace_that_does_not_exist_fails_start_with_its_name():
    with pytest.raises(RuntimeError, match=f"client thread could not enter {MISSING}"):
        LabClient(MISSING, "192.0.2.1").start()
    with pytest.raises(RuntimeError, match=f"new-open probe could not enter {MISSING}"):
        NewOpenProbe(MISSING, "192.0.2.1", "/d", client_name="c").start()
    with pytest.raises(FileNotFoundError):        # the worker raises what setns raised
        NetnsWorker(MISSING)
    with pytest.raises(FileNotFoundError):
        in_netns(MISSING, lambda: 1)


@pytest.fixture
def worker(monkeypatch):
    entered: list[str] = []
    monkeypatch.setattr(linux, "setns_path", lambda path, nstype: entered.append(str(path)))
    w = NetnsWorker("gha-x", name="gha-test-worker")
    assert entered == ["/run/netns/gha-x"]
    yield w
    w.stop()
    assert not w._thread.is_alive(), "stop() ends the thread at once (it waits for work)"


def test_the_worker_runs_callables_in_its_own_thread_and_returns_what_they_return(worker):
    assert worker(lambda: threading.current_thread().name) == "gha-test-worker"
    assert [worker(lambda i=i: i * i) for i in range(5)] == [0, 1, 4, 9, 16]


def test_the_callables_error_comes_back_as_it_was_raised(worker):
    with pytest.raises(ZeroDivisionError):
        worker(lambda: 1 / 0)

    def socket_timeout():
        raise TimeoutError("timed out")       # what a socket raises: not the worker's timeout
    with pytest.raises(TimeoutError, match="^timed out$"):
        worker(socket_timeout)
    assert worker(lambda: "still serving") == "still serving"


def test_no_answer_in_time_is_a_timeout_naming_the_namespace(worker):
    release = threading.Event()
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match="no answer from gha-test-worker in gha-x in 0.2 s"):
        worker(lambda: release.wait(5), timeout=0.2)
    assert time.monotonic() - t0 < 2
    release.set()
    assert worker(lambda: "next") == "next", "the slow callable ran to its end, then the next"
