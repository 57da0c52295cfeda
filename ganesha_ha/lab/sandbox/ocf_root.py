"""/usr/lib/ocf/resource.d as a sandbox sees it: the host's providers plus this checkout's agent.

Pacemaker (and pcs, crmsh, crm_resource) look for OCF agents under the compiled-in
/usr/lib/ocf/resource.d only. Writing this checkout's agent there would change the machine
for everyone on it: several checkouts run their suites and labs at once, and a Pacemaker
test of one checkout would then run whichever checkout's agent was installed last. So the
agent is written into a private directory and shown at /usr/lib/ocf/resource.d inside a
mount namespace only (a sandbox node's, or one command's): a private directory holding a
bind of every host provider except ganesha-ha, and this checkout's ganesha-ha provider,
is bound over /usr/lib/ocf/resource.d. The host's /usr/lib/ocf is never written.
"""
from __future__ import annotations

from pathlib import Path

from ...install import AGENTS, agent_text

OCF_DIR = Path("/usr/lib/ocf/resource.d")
PROVIDER = "ganesha-ha"


def ocf_overlay(root: Path, files: dict[str, str] | None = None) -> list[tuple[Path, str]]:
    """Make `root` a private resource.d and return the binds, in order, that show it at
    /usr/lib/ocf/resource.d: (host provider directory, root/<provider>) for each provider,
    then (root, /usr/lib/ocf/resource.d).

    `files`: name -> text of the ganesha-ha provider's files (mode 0755); default: `exports`
    and `notify` as `ganesha-ha install-agent` writes them for this interpreter and checkout.
    """
    out: list[tuple[Path, str]] = []
    for provider in sorted(p for p in OCF_DIR.iterdir() if p.is_dir() and p.name != PROVIDER):
        (root / provider.name).mkdir(parents=True, exist_ok=True)
        out.append((provider, str(root / provider.name)))
    mine = root / PROVIDER
    mine.mkdir(parents=True, exist_ok=True)
    for name, text in (files if files is not None else {n: agent_text(name=n) for n in AGENTS}).items():
        (mine / name).write_text(text)
        (mine / name).chmod(0o755)
    return [*out, (root, str(OCF_DIR))]
