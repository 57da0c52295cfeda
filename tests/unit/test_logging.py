"""The agent's log lines go where resource-agents' ha_log/ha_debug/ocf_exit_reason put them
(heartbeat/ocf-shellfuncs.in): syslog by HA_LOGFACILITY, HA_LOGFILE, HA_DEBUGLOG, and stderr only
when neither syslog nor a log file is set. syslog is the edge faked here (this machine has no
/dev/log); the files and stderr are real. Under the real Pacemaker: test_agent_pacemaker.py."""
from __future__ import annotations

import re
import subprocess
import sys
import types

import pytest

from conftest import ROOT
from ganesha_ha import ocf

HA_VARS = ("HA_LOGFACILITY", "HA_LOGFILE", "HA_DEBUGLOG", "HA_debug", "HA_LOGTAG", "HA_DATEFMT")


class FakeSyslog(types.ModuleType):
    """The `syslog` module's surface the Logger uses, recording what it is given."""

    LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR, LOG_CRIT = 7, 6, 4, 3, 2
    LOG_DAEMON, LOG_LOCAL3 = 3 << 3, 19 << 3

    def __init__(self):
        super().__init__("syslog")
        self.opened: list[tuple[str, int, int]] = []
        self.lines: list[tuple[int, str]] = []

    def openlog(self, ident, logoption, facility):
        self.opened.append((ident, logoption, facility))

    def syslog(self, prio, text):
        self.lines.append((prio, text))


@pytest.fixture
def logenv(monkeypatch, tmp_path):
    for k in HA_VARS:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("OCF_RESOURCE_INSTANCE", "vol1-exports")
    monkeypatch.setattr(ocf.os, "isatty", lambda fd: False)
    fake = FakeSyslog()
    monkeypatch.setitem(sys.modules, "syslog", fake)
    return monkeypatch, tmp_path, fake


def events(log: ocf.Logger) -> None:
    log.info("2 exports\n  live")
    log.warning("one not live")
    log.error("it failed")
    log.debug("a detail")


def lines(path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_stderr_only_when_neither_syslog_nor_logfile(logenv, capsys):
    mp, tmp, fake = logenv
    mp.setenv("HA_LOGFACILITY", "none")   # "none" is no facility, as in ha_log
    events(ocf.Logger())
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and fake.lines == [] and fake.opened == []
    assert re.match(r"^[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d ganesha-ha\(vol1-exports\)\[\d+\]: INFO: 2 exports live$",
                    err[0]), err
    assert err[1].endswith(": WARNING: one not live") and err[2].endswith(": ERROR: it failed")


def test_under_a_cluster_each_line_once_in_syslog_and_the_logfile(logenv, capsys):
    """What Pacemaker's executor sets: HA_LOGFACILITY=daemon, HA_LOGFILE=its detail log."""
    mp, tmp, fake = logenv
    mp.setenv("HA_LOGFACILITY", "daemon")
    mp.setenv("HA_LOGFILE", str(tmp / "pacemaker.log"))
    events(ocf.Logger())
    assert capsys.readouterr().err == "", "stderr is recorded by the executor: a second copy"
    assert fake.opened == [(f"ganesha-ha(vol1-exports)[{ocf.os.getpid()}]", 0, FakeSyslog.LOG_DAEMON)]
    assert fake.lines == [(6, "INFO: 2 exports live"), (4, "WARNING: one not live"), (3, "ERROR: it failed")]
    log = lines(tmp / "pacemaker.log")
    assert len(log) == 3
    assert re.match(r"^[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d  ganesha-ha\(vol1-exports\)\[\d+\]:    "
                    r"INFO: 2 exports live$", log[0]), log


def test_logfile_alone(logenv, capsys):
    mp, tmp, fake = logenv
    mp.setenv("HA_LOGFILE", str(tmp / "ha.log"))
    mp.setenv("HA_LOGFACILITY", "local3")
    mp.setenv("HA_DATEFMT", "%Y-%m-%d ")
    events(ocf.Logger())
    assert capsys.readouterr().err == ""
    assert fake.opened[0][2] == FakeSyslog.LOG_LOCAL3
    assert lines(tmp / "ha.log")[2].startswith(tuple(f"{y}-" for y in range(2000, 2100)))


def test_debug_lines_need_ha_debug_and_skip_the_logfile(logenv, capsys):
    mp, tmp, fake = logenv
    mp.setenv("HA_LOGFILE", str(tmp / "ha.log"))
    mp.setenv("HA_DEBUGLOG", str(tmp / "debug.log"))
    mp.setenv("HA_debug", "1")
    events(ocf.Logger())
    assert capsys.readouterr().err == ""
    assert [ln.split(": ", 1)[1] for ln in lines(tmp / "ha.log")] == [
        "   INFO: 2 exports live", "   WARNING: one not live", "   ERROR: it failed"]
    debug = lines(tmp / "debug.log")
    assert len(debug) == 4 and debug[3].startswith(f"ganesha-ha(vol1-exports)[{ocf.os.getpid()}]:\t")
    assert debug[3].endswith("DEBUG: a detail")
    mp.setenv("HA_debug", "0")
    ocf.Logger().debug("not this one")
    assert len(lines(tmp / "debug.log")) == 4


def test_debug_to_stderr_when_no_debuglog_nor_syslog(logenv, capsys):
    mp, tmp, fake = logenv
    mp.setenv("HA_LOGFILE", str(tmp / "ha.log"))
    mp.setenv("HA_debug", "1")
    ocf.Logger().debug("a detail")
    assert capsys.readouterr().err.endswith(": DEBUG: a detail\n")
    assert lines(tmp / "ha.log") == []


def test_exit_reason_once_on_stderr_and_as_an_error_in_the_log(logenv, capsys):
    mp, tmp, fake = logenv
    mp.setenv("HA_LOGFILE", str(tmp / "ha.log"))
    ocf.Logger().exit_reason("volume /srv/x\nis not mounted")
    assert capsys.readouterr().err == "ocf-exit-reason:volume /srv/x is not mounted\n"
    assert lines(tmp / "ha.log")[0].endswith("ERROR: volume /srv/x is not mounted")


def test_on_a_terminal_stderr_only(logenv, capsys):
    mp, tmp, fake = logenv
    mp.setattr(ocf.os, "isatty", lambda fd: fd == 0)
    mp.setenv("HA_LOGFILE", str(tmp / "ha.log"))
    mp.setenv("HA_LOGFACILITY", "daemon")
    ocf.Logger().info("by hand")
    assert re.match(rf"^[A-Z][a-z]{{2}} [ 0-9]\d \d\d:\d\d:\d\d ganesha-ha\(vol1-exports\)\[{ocf.os.getpid()}\]: "
                    r"INFO: by hand\n$", capsys.readouterr().err)
    assert lines(tmp / "ha.log") == [] and fake.lines == []


def test_unwritable_logfile_never_fails_the_agent(tmp_path):
    """The real agent, with a log file it cannot write: the action's answer is unchanged."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HA_LOGFILE": str(tmp_path / "no" / "such" / "dir.log"),
           "OCF_RESKEY_server": "nfsd", "OCF_RESKEY_volume": "/x"}
    proc = subprocess.run([str(ROOT / "ra" / "exports"), "start"], env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=60)
    assert proc.returncode == 6, proc.stderr
    assert "Traceback" not in proc.stderr
