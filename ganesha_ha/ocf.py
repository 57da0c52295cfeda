"""The OCF protocol: return codes, parameters from the environment, meta-data, logging.

Kept free of heavy imports: `meta-data`, `usage` and `validate-all` of the agent import only
this module, so the per-call floor stays close to a shell agent's.
"""
from __future__ import annotations

import os
import sys
import time

from .errors import (OCF_DEGRADED, OCF_ERR_ARGS, OCF_ERR_CONFIGURED, OCF_ERR_GENERIC,
                     OCF_ERR_INSTALLED, OCF_ERR_PERM, OCF_ERR_UNIMPLEMENTED, OCF_NOT_RUNNING, OCF_SUCCESS,
                     GaneshaHAError)
from .servers import BACKENDS, SERVERS

# The OCF return codes are defined beside the exceptions that carry them (errors.py) and
# re-exported here on purpose: the agents speak `ocf.OCF_...` without importing errors.py.
__all__ = [
    "OCF_DEGRADED", "OCF_ERR_ARGS", "OCF_ERR_CONFIGURED", "OCF_ERR_GENERIC", "OCF_ERR_INSTALLED", "OCF_ERR_PERM",
    "OCF_ERR_UNIMPLEMENTED", "OCF_NOT_RUNNING", "OCF_SUCCESS",
    "AGENT_NAME", "PROVIDER", "Param", "PARAMS", "ACTIONS", "NOTIFY_AGENT_NAME", "NOTIFY_ACTIONS", "DOCTYPE",
    "EXPORTS_LONGDESC", "EXPORTS_SHORTDESC", "meta_data", "usage", "answer", "RUN_ACTIONS", "unconfigured",
    "perform", "dispatch", "param", "param_bool", "is_probe", "Logger",
]

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

AGENT_NAME = "exports"
PROVIDER = "ganesha-ha"


class Param:
    """One agent parameter. A plain class on purpose: `dataclasses` pulls in inspect and ast,
    about 10 ms at every start of the agent, for every action."""

    __slots__ = ("name", "shortdesc", "longdesc", "type", "required", "unique_group", "reloadable", "default",
                 "options")

    def __init__(self, name: str, shortdesc: str, longdesc: str, type: str = "string",
                 required: bool = False, unique_group: str | None = None, reloadable: bool = False,
                 default: str | None = None, options: tuple[str, ...] = ()):
        self.name, self.shortdesc, self.longdesc, self.type = name, shortdesc, longdesc, type
        self.required, self.unique_group, self.reloadable, self.default = (
            required, unique_group, reloadable, default)
        self.options = options   # type "select": the values allowed (OCF 1.1), which pcs checks


PARAMS: tuple[Param, ...] = (
    Param("server", f"NFS server: {' or '.join(SERVERS)}",
          "Which NFS server serves the volume's exports on this node: "
          + "; ".join(f"'{b.name}' ({b.description}; needs {b.programs})" for b in BACKENDS) + ".",
          type="select", options=SERVERS, required=True),
    Param("volume", "Mount point of the shared volume",
          "The mount point of the shared (e.g. DRBD) file system whose exports this resource manages. "
          "All exports recorded in <volume>/.ganesha-ha/registry.json are made available together. "
          "Leave empty in classic single-export mode (directory=...), where the volume is the file "
          "system that contains the directory.", unique_group="volume"),
    Param("ip", "Floating IP the clients use",
          "The floating IP address clients mount from. With server=ganesha it names the volume's "
          "client-recovery records and the take-over grace event sent to the node's Ganesha; for a "
          "volume initialised with --ganesha-mode instance it is required: the volume's own ganesha.nfsd "
          "binds it (Bind_Addr), so the IP resource starts before this one."),
    Param("bus_address", "D-Bus address of Ganesha's bus",
          "D-Bus address of the bus NFS-Ganesha is on (default: the system bus or "
          "$DBUS_SYSTEM_BUS_ADDRESS).", reloadable=True),
    Param("config", "ganesha-ha settings file",
          "Path of ganesha-ha's own settings file (default /etc/ganesha-ha/ganesha-ha.conf).",
          reloadable=True, default="/etc/ganesha-ha/ganesha-ha.conf"),
    Param("directory", "Classic mode: the directory or directories to export",
          "Drop-in for ocf:heartbeat:exportfs: export this directory (or these, separated by spaces, "
          "each its own export) with clientspec, options and fsid, instead of a whole volume. Their "
          "identity is kept in the registry of the file system that contains them (one file system "
          "per resource). A file system is managed either by one volume-mode resource or by classic "
          "resources, not both.", unique_group="directory"),
    Param("clientspec", "Classic mode: client spec(s)",
          "Classic mode: the client(s) to export to, as in /etc/exports; several separated by spaces; "
          "an IPv6 address or network may be written in brackets as for exportfs "
          "([2001:db8::10], [2001:db8::]/64)."),
    Param("options", "Classic mode: export options",
          "Classic mode: export options as in /etc/exports (e.g. rw,sync,no_root_squash); without rw "
          "the export is read-only, as with exportfs; an fsid= given here is honoured unless fsid is set."),
    Param("fsid", "Classic mode: fsid, or the first of several",
          "Classic mode: the fsid (a number or UUID). With several directories a whole number, and the "
          "directories get fsid, fsid+1, ... in order (as ocf:heartbeat:exportfs). When empty, one is "
          "generated once per directory and stored on the volume, so every node uses the same."),
    Param("unlock_on_stop", "Release NFS locks at stop (knfsd)",
          "With server=knfsd, a stop releases the kernel's NLM locks on the volume's file system "
          "(/proc/fs/nfsd/unlock_filesystem) and those taken through ip (/proc/fs/nfsd/unlock_ip), "
          "so the file system can be unmounted, when the nfsd module offers them. It affects every "
          "export of that file system. As ocf:heartbeat:exportfs.", type="boolean", default="1"),
    Param("wait_for_leasetime_on_stop", "Wait out the NFSv4 lease time at stop (knfsd)",
          "With server=knfsd, a stop waits the NFSv4 lease time (/proc/fs/nfsd/nfsv4leasetime) plus "
          "2 s after withdrawing, as ocf:heartbeat:exportfs, but at most half of the stop timeout.",
          type="boolean", default="0"),
    Param("rmtab_backup", "Accepted for ocf:heartbeat:exportfs, not needed",
          "Accepted so that ocf:heartbeat:exportfs configurations can be taken over; ignored: the "
          "volume's rmtab lines are always kept in <volume>/.ganesha-ha/rmtab."),
)

# (action, advised timeout, advised interval): the README's recipe uses the same values
# (tests/unit/test_metadata.py compares them)
ACTIONS = (
    ("start", "60s", None), ("stop", "60s", None), ("monitor", "30s", "5s"),
    ("validate-all", "20s", None), ("meta-data", "5s", None), ("reload-agent", "20s", None),
)

# ocf:ganesha-ha:notify (notify_agent.py): its name and advised timeouts, here so that what
# prints commands creating it (formats/cib.py, an import's replacement) need not load the agent
NOTIFY_AGENT_NAME = "notify"
NOTIFY_ACTIONS = (("start", "30s", None), ("stop", "20s", None), ("monitor", "20s", "10s"),
                  ("validate-all", "20s", None), ("meta-data", "5s", None), ("reload-agent", "20s", None))


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


# The document type of the meta-data, declared in full in the document itself. OCF 1.1 has no
# DTD (ClusterLabs/OCF-spec ra/1.1 gives a RELAX NG schema; pcs validates with its
# ocf-1.1.rng), but ocf-tester validates meta-data with `xmllint --valid` in resource-agents'
# directory, where ra-api-1.dtd is OCF 1.0's: its `<!ELEMENT content EMPTY>` cannot hold a
# `select`'s `<option>`s, and XML forbids declaring an element twice, so an internal subset
# beside that external DTD cannot allow them. This DTD is OCF 1.0's with the 1.1 additions
# ganesha-ha uses: unique-group, reloadable, content type select with options, the
# reload-agent action. tests/unit/test_metadata.py validates the output with xmllint against it
# and against pcs's OCF 1.1 schema.
DOCTYPE = """<!DOCTYPE resource-agent [
<!ELEMENT resource-agent (version,longdesc,shortdesc,parameters?,actions)>
<!ATTLIST resource-agent name CDATA #REQUIRED version CDATA #IMPLIED>
<!ELEMENT version (#PCDATA)>
<!ELEMENT parameters (parameter*)>
<!ELEMENT actions (action*)>
<!ELEMENT parameter (longdesc+,shortdesc+,content)>
<!ATTLIST parameter name CDATA #REQUIRED required (1|0) "0" unique (1|0) "0" unique-group CDATA #IMPLIED
          reloadable (1|0) "0">
<!ELEMENT longdesc ANY>
<!ATTLIST longdesc lang NMTOKEN #IMPLIED>
<!ELEMENT shortdesc ANY>
<!ATTLIST shortdesc lang NMTOKEN #IMPLIED>
<!ELEMENT content (option*)>
<!ATTLIST content type (string|integer|boolean|time|select) #REQUIRED default CDATA #IMPLIED>
<!ELEMENT option EMPTY>
<!ATTLIST option value CDATA #REQUIRED>
<!ELEMENT action EMPTY>
<!ATTLIST action name (start|stop|recover|monitor|restart|migrate_to|migrate_from|promote|demote|notify|status|
          reload|reload-agent|meta-data|usage|methods|validate-all) #REQUIRED timeout CDATA #REQUIRED
          interval CDATA #IMPLIED start-delay CDATA #IMPLIED role CDATA #IMPLIED depth CDATA #IMPLIED>
]>"""


EXPORTS_LONGDESC = (
    "Makes all NFS exports of one shared volume highly available, for the kernel "
    "NFS server (exportfs) or NFS-Ganesha (live over D-Bus). Each export's identity (Ganesha "
    "Export_Id, knfsd fsid, pseudo path, clients and options) is stored on the volume itself, so "
    "whichever node mounts it serves identical exports, and client-recovery state (rmtab, Ganesha "
    "recovery records, statd's NSM records) moves with the volume. Manage exports with "
    "'ganesha-ha export add|remove|list'.")
EXPORTS_SHORTDESC = "Highly available NFS exports of a shared volume (knfsd or NFS-Ganesha)"


def meta_data(name: str = AGENT_NAME, longdesc: str = EXPORTS_LONGDESC, shortdesc: str = EXPORTS_SHORTDESC,
              params: tuple[Param, ...] = PARAMS,
              actions: tuple[tuple[str, str, str | None], ...] = ACTIONS) -> str:
    """OCF 1.1 meta-data of one of the package's agents (default: ocf:ganesha-ha:exports;
    notify_agent.py gives its own)."""
    lines = [
        '<?xml version="1.0"?>',
        DOCTYPE,
        f'<resource-agent name="{name}" version="0.1.0">',
        "<version>1.1</version>",
        f'<longdesc lang="en">{_xml_escape(longdesc)}</longdesc>',
        f'<shortdesc lang="en">{_xml_escape(shortdesc)}</shortdesc>',
        "<parameters>",
    ]
    for p in params:
        attrs = f'name="{p.name}" required="{1 if p.required else 0}"'
        if p.unique_group:
            attrs += f' unique-group="{p.unique_group}"'
        if p.reloadable:
            attrs += ' reloadable="1"'
        default = f' default="{_xml_escape(p.default)}"' if p.default is not None else ""
        content = (f'<content type="{p.type}"{default}/>' if not p.options else
                   f'<content type="{p.type}"{default}>'
                   + "".join(f'<option value="{_xml_escape(o)}"/>' for o in p.options) + "</content>")
        lines += [
            f"<parameter {attrs}>",
            f'<longdesc lang="en">{_xml_escape(p.longdesc)}</longdesc>',
            f'<shortdesc lang="en">{_xml_escape(p.shortdesc)}</shortdesc>',
            content,
            "</parameter>",
        ]
    lines.append("</parameters>")
    lines.append("<actions>")
    for action, timeout, interval in actions:
        extra = f' interval="{interval}" depth="0"' if interval else ""
        lines.append(f'<action name="{action}" timeout="{timeout}"{extra}/>')
    lines.append("</actions>")
    lines.append("</resource-agent>")
    return "\n".join(lines) + "\n"


def usage(name: str = AGENT_NAME) -> str:
    return f"usage: {name} {{start|stop|monitor|validate-all|meta-data|reload-agent|usage}}\n"


def answer(log: "Logger", rc: int, reason: str) -> int:
    """A failing (or degraded) answer of an agent: its one `ocf-exit-reason:` line, then the code."""
    log.exit_reason(reason)
    return rc


# the actions an agent carries out (meta-data, usage and help only print)
RUN_ACTIONS = ("start", "stop", "monitor", "status", "validate-all", "reload-agent", "reload")


def unconfigured(log: "Logger", action: str, exc: GaneshaHAError) -> int:
    """The answer to `action` when the agent's parameters fail (`exc`) before anything ran:
    they cannot have started anything, so a stop succeeds and a probe finds nothing running
    (a failed stop fences the node; a failed probe keeps the resource from starting anywhere);
    any other action fails with the error's code."""
    if action == "stop":
        log.info(f"stop: nothing to do, these parameters cannot have started anything ({exc})")
        return OCF_SUCCESS
    if action in ("monitor", "status") and is_probe():
        log.info(f"probe: not running, these parameters cannot have started anything ({exc})")
        return OCF_NOT_RUNNING
    return answer(log, exc.ocf_rc, str(exc))


def perform(log: "Logger", action: str, step: Callable[[], int],
            probe_not_running: tuple[type[GaneshaHAError], ...] = ()) -> int:
    """`step()` (the work of `action`) with every failure an OCF answer, never a traceback in
    the cluster log: a failed stop is OCF_ERR_GENERIC (Pacemaker then fences: the one answer
    that keeps data safe); a probe failing with one of `probe_not_running` finds the resource
    not running; any other GaneshaHAError answers its own code (errors.py); anything else is
    OCF_ERR_GENERIC naming the exception."""
    try:
        return step()
    except GaneshaHAError as exc:
        if action == "stop":
            return answer(log, OCF_ERR_GENERIC, f"stop failed: {exc}")
        if action in ("monitor", "status") and isinstance(exc, probe_not_running) and is_probe():
            return OCF_NOT_RUNNING
        return answer(log, exc.ocf_rc, str(exc))
    except Exception as exc:
        return answer(log, OCF_ERR_GENERIC, f"{action} failed unexpectedly: {type(exc).__name__}: {exc}")


def dispatch(agent: Any, action: str) -> int:
    """One of RUN_ACTIONS on an agent with validate(), start(), stop() and monitor() (which
    answers status too); a reload has nothing to do: the parameters are read at every call."""
    if action == "validate-all":
        agent.validate()
        return OCF_SUCCESS
    if action in ("reload-agent", "reload"):
        return OCF_SUCCESS
    if action == "start":
        return agent.start()
    if action == "stop":
        return agent.stop()
    return agent.monitor()


def param(name: str) -> str:
    """An agent parameter from OCF_RESKEY_<name> (empty string when unset)."""
    return os.environ.get(f"OCF_RESKEY_{name}", "").strip()


def param_bool(name: str, default: bool) -> bool:
    """A boolean parameter as resource-agents' ocf_is_true reads it (yes/true/1/on; also
    no/false/0/off; empty or unset: `default`). Anything else is a ValidationError, where
    ocf_is_true would read it as false."""
    value = param(name).lower()
    if not value:
        return default
    if value in ("yes", "true", "1", "on"):
        return True
    if value in ("no", "false", "0", "off"):
        return False
    from .errors import ValidationError

    raise ValidationError(name, f"must be a boolean (yes/true/1/on or no/false/0/off), got {param(name)!r}")


def is_probe() -> bool:
    """A monitor with interval 0 is Pacemaker's probe: 'not running' is a normal answer."""
    return os.environ.get("OCF_RESKEY_CRM_meta_interval", "0") in ("0", "")


class Logger:
    """One line per event, where resource-agents' ocf-shellfuncs (`ha_log`, `ha_debug`,
    `ocf_exit_reason`) would put it, so the line is found where an administrator looks and is
    written once:

    - syslog, with the facility in $HA_LOGFACILITY ("none" or empty: no syslog);
    - $HA_LOGFILE, appended "<date> <tag>:    <LEVEL>: <text>" (Pacemaker's executor sets it to
      its detail log, e.g. /var/log/pacemaker/pacemaker.log, and HA_LOGFACILITY to "daemon");
    - stderr only when neither is set (a person running the agent; Pacemaker records an agent's
      stderr in its own log, so writing there as well would log each line twice);
    - $HA_DEBUGLOG too when set (and not the same file as HA_LOGFILE), in its own format;
    - on a terminal (stdin is a tty, as ha_log tests with `tty`): stderr only.

    Every stderr line is "<date><tag>: <LEVEL>: <text>" (ha_log leaves out the tag when not on
    a terminal and the date when on one; one format is simpler to read and to test).

    Debug lines are written only with $HA_debug set (not "0"): to syslog at debug priority,
    $HA_DEBUGLOG, or stderr when neither is set; never to HA_LOGFILE (as ha_debug). The tag is
    "ganesha-ha(<resource>)[<pid>]" or $HA_LOGTAG; the date format $HA_DATEFMT. A log that
    cannot be written never fails the action. `use_syslog=True` (the settings' [log] syslog)
    logs to syslog's daemon facility when HA_LOGFACILITY is not set.

    Imports nothing beyond os/sys/time unless syslog is used: the agent makes one per call.
    """

    LEVELS = ("debug", "info", "warning", "err", "crit")
    _LABEL = {"debug": "DEBUG", "info": "INFO", "warning": "WARNING", "err": "ERROR", "crit": "CRIT"}

    def __init__(self, use_syslog: bool | None = None):
        env = os.environ
        self.instance = env.get("OCF_RESOURCE_INSTANCE", AGENT_NAME)
        self.tag = env.get("HA_LOGTAG") or f"{PROVIDER}({self.instance})[{os.getpid()}]"
        self.datefmt = env.get("HA_DATEFMT", "%b %d %T ")
        self.debug_on = env.get("HA_debug", "0") not in ("0", "")
        facility = env.get("HA_LOGFACILITY", "")
        if facility == "none":
            facility = ""
        if not facility and use_syslog:
            facility = "daemon"
        self.logfile = env.get("HA_LOGFILE", "")
        self.debuglog = env.get("HA_DEBUGLOG", "")
        try:
            self.tty = os.isatty(0)
        except OSError:
            self.tty = False
        self.syslog = None
        if facility and not self.tty:
            import syslog

            fac = getattr(syslog, f"LOG_{facility.upper()}", None)
            if isinstance(fac, int):
                syslog.openlog(self.tag, 0, fac)
                self.syslog = syslog

    def _append(self, path: str, line: str) -> None:
        try:
            with open(path, "a", encoding="utf-8", errors="replace") as fh:
                fh.write(line)
        except OSError:
            pass

    def _syslog(self, level: str, text: str) -> None:
        if self.syslog is not None:
            prio = {"debug": self.syslog.LOG_DEBUG, "info": self.syslog.LOG_INFO,
                    "warning": self.syslog.LOG_WARNING, "err": self.syslog.LOG_ERR,
                    "crit": self.syslog.LOG_CRIT}[level]
            self.syslog.syslog(prio, text)

    def log(self, level: str, message: str, ignore_stderr: bool = False) -> None:
        """`ignore_stderr`: the text is already on stderr (an exit reason): not again."""
        if level == "debug" and not self.debug_on:
            return
        text = f"{self._LABEL[level]}: {' '.join(message.split())}"
        date = time.strftime(self.datefmt)
        if self.tty:
            if not ignore_stderr:
                sys.stderr.write(f"{date}{self.tag}: {text}\n")
            return
        self._syslog(level, text)
        if level == "debug":  # ha_debug: never to HA_LOGFILE
            sink = self.debuglog
        else:
            sink = self.logfile
            if self.logfile:
                self._append(self.logfile, f"{date} {self.tag}:    {text}\n")
        if self.debuglog and (level == "debug" or self.debuglog != self.logfile):
            self._append(self.debuglog, f"{self.tag}:\t{date}{text}\n")
        if self.syslog is None and not sink and not ignore_stderr:
            sys.stderr.write(f"{date}{self.tag}: {text}\n")

    def exit_reason(self, message: str) -> None:
        """The `ocf-exit-reason:` line Pacemaker shows (crm_mon), logged as an error too."""
        text = " ".join(message.split())[:500]
        sys.stderr.write(f"ocf-exit-reason:{text}\n")
        self.log("err", text, ignore_stderr=True)

    def info(self, message: str) -> None:
        self.log("info", message)

    def warning(self, message: str) -> None:
        self.log("warning", message)

    def error(self, message: str) -> None:
        self.log("err", message)

    def debug(self, message: str) -> None:
        self.log("debug", message)
