"""Running the resource agent as Pacemaker would, and a knfsd sandbox for it (shared by the
agent's server tests): in-process (`ganesha_ha.agent.run`, what ra/exports runs) or through
the real ra/exports, and the checks every answer must pass."""
from __future__ import annotations

import io
import os
import re
import subprocess
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Iterator

from conftest import ROOT

AGENT = str(ROOT / "ra" / "exports")
LOG_LINE = re.compile(r"^[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d ganesha-ha\([^)]*\)\[\d+\]: "
                      r"(DEBUG|INFO|WARNING|ERROR|CRIT): \S.*$")


# ---- running the agent ----------------------------------------------------------------------

def run_inprocess(action: str, params: dict[str, str]) -> tuple[int, str, str]:
    """`ganesha_ha.agent.run(action)` with exactly these OCF_RESKEY_ parameters."""
    from ganesha_ha import agent

    saved = dict(os.environ)
    try:
        for key in [k for k in os.environ if k.startswith("OCF_RESKEY_")]:
            del os.environ[key]
        os.environ.update({f"OCF_RESKEY_{k}": v for k, v in params.items()})
        os.environ["OCF_RESOURCE_INSTANCE"] = "gha_input"
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            rc = agent.run(action)
        return rc, out.getvalue(), err.getvalue()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_subprocess(action: str, params: dict[str, str]) -> tuple[int, str, str]:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "OCF_ROOT": "/usr/lib/ocf",
           "OCF_RESOURCE_INSTANCE": "gha_input"}
    env.update({f"OCF_RESKEY_{k}": v for k, v in params.items()})
    proc = subprocess.run([AGENT, action], env=env, capture_output=True, timeout=60)
    return (proc.returncode, proc.stdout.decode("utf-8", "replace"),
            proc.stderr.decode("utf-8", "replace"))


def imported_modules(action: str, env: dict[str, str], workdir: Path) -> tuple[int, str, str, set[str]]:
    """The modules the agent loads for `action`, run as Pacemaker runs it: the file `ganesha-ha
    install-agent` writes (install.agent_text for this checkout and this interpreter), its exec
    line given `-X importtime`. Returns (exit code, stderr without the import lines, the names
    of every module imported, the interpreter's own start-up included)."""
    import sys

    from ganesha_ha.install import agent_text

    text = agent_text(python=sys.executable, root=str(ROOT))
    assert text.count('exec "$py" -IS ') == 1, "the agent file execs the interpreter once, with -IS"
    agent = workdir / "exports-importtime"
    agent.write_text(text.replace('exec "$py" -IS ', 'exec "$py" -X importtime -IS '))
    agent.chmod(0o755)
    proc = subprocess.run([str(agent), action], env=env, capture_output=True, text=True, timeout=60, cwd="/")
    lines = proc.stderr.splitlines()
    names = {ln.rsplit("|", 1)[1].strip() for ln in lines if ln.startswith("import time:") and "|" in ln}
    names.discard("imported package")
    return proc.returncode, proc.stdout, "\n".join(ln for ln in lines if not ln.startswith("import time:")), names


def check_well_formed(rc: int, out: str, err: str, allowed: set[int]) -> list[str]:
    """What Pacemaker sees is always deliberate: an allowed code, log lines and at most one
    exit reason, no traceback, nothing on stdout; a failing (or degraded) answer says why in
    exactly one `ocf-exit-reason:` line. Returns the exit reasons (their text)."""
    assert rc in allowed, (rc, err)
    assert out == "", out
    assert "Traceback" not in err and "unexpectedly" not in err, err
    lines = err.splitlines()
    reasons = [l[len("ocf-exit-reason:"):] for l in lines if l.startswith("ocf-exit-reason:")]
    assert all(LOG_LINE.match(l) for l in lines if not l.startswith("ocf-exit-reason:")), err
    assert len(reasons) == (0 if rc in (0, 7) else 1), err
    return reasons


# ---- a knfsd classic-mode sandbox -------------------------------------------------------------

class Sandbox:
    """A tmpfs volume and a private /var/lib/nfs with the real exportfs (one per module)."""

    def __init__(self, work: Path, volume: Path, state: Path, config: Path):
        self.work, self.volume, self.state, self.config = work, volume, state, config

    def etab_for(self, directory: str) -> list:
        """The etab entries of `directory` (paths compared with their escapes decoded)."""
        from ganesha_ha.backends.knfsd_table import normalize_path, parse_etab_entries

        text = (self.state / "etab").read_bytes().decode("utf-8", "surrogateescape")
        return [e for e in parse_etab_entries(text) if e.path == normalize_path(directory)]

    def registry_exports(self) -> list[dict]:
        import json

        path = self.volume / ".ganesha-ha" / "registry.json"
        return json.loads(path.read_bytes())["exports"] if path.exists() else []

    def reset(self) -> None:
        """Forget every export (the registry would fill its id range over 10 000 examples)."""
        from ganesha_ha.registry import Registry, RegistryState

        reg = Registry(self.volume)
        if reg.exists():
            with reg.locked():
                st = reg.load()
                reg.save(RegistryState(volume_uuid=st.volume_uuid, server=st.server, id_range=st.id_range,
                                       exports=(), generation=st.generation))
        (self.state / "etab").write_text("")

    def stray_state(self) -> list[str]:
        """Registries anywhere but on the volume (the classic mode must never write elsewhere).
        Each found one is removed, so that one failure is reported once."""
        import shutil

        found = [p for p in (Path("/.ganesha-ha"), self.work / ".ganesha-ha", Path("/tmp/.ganesha-ha"))
                 if p.exists()]
        for p in found:
            shutil.rmtree(p)
        return [str(p) for p in found]



@contextmanager
def knfsd_sandbox(work: Path, config_extra: str = "") -> Iterator[Sandbox]:
    """A tmpfs volume at <work>/vol and a private /var/lib/nfs with the real exportfs, and a
    settings file for them (plus `config_extra`, e.g. a [knfsd] proc_nfsd stand-in)."""
    from ganesha_ha import linux
    from knfsd_ns import REAL_EXPORTFS, private_nfs_state

    config = work / "gha.conf"
    config.write_text(f"[knfsd]\nexportfs = {REAL_EXPORTFS}\n{config_extra}[node]\nruntime_dir = {work / 'run'}\n")
    with private_nfs_state(work / "ns") as state:
        volume = work / "vol"
        volume.mkdir()
        linux.mount("gha-agent-input", str(volume), "tmpfs", 0, "size=32m,mode=0755")
        try:
            yield Sandbox(work, volume, state, config)
        finally:
            linux.umount(str(volume), lazy=True)
