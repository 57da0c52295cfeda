"""The CLI's output when its reader goes away: `ganesha-ha export list | head -1` is an
administrator's everyday pipe, and must not end in an "internal error" message."""
from __future__ import annotations

import os
import subprocess
import sys


def test_a_closed_pipe_on_stdout_is_no_internal_error(tmp_path):
    conf = tmp_path / "gha.conf"
    conf.write_text(f"[node]\nruntime_dir = {tmp_path / 'run'}\n")
    read_end, write_end = os.pipe()
    os.close(read_end)                     # the reader (head) has already gone
    try:
        proc = subprocess.run([sys.executable, "-m", "ganesha_ha.cli", "--config", str(conf), "export", "list"],
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write_end)
    assert proc.stderr == "" and proc.returncode == 141   # as a shell reports a tool ended by SIGPIPE


def test_the_help_names_both_agents_and_the_lab_s_sizes():
    """Found by a try-out: `ganesha-ha --help` said install-agent installs ocf:ganesha-ha:exports
    (it installs notify too) and that the lab has two nodes (it has up to lab.layout.MAX_NODES)."""
    from ganesha_ha.lab.layout import MAX_NODES

    out = " ".join(subprocess.run([sys.executable, "-m", "ganesha_ha.cli", "--help"], capture_output=True, text=True,
                                  timeout=60).stdout.split())
    assert "install the OCF agents ocf:ganesha-ha:exports and ocf:ganesha-ha:notify" in out
    assert MAX_NODES == 9 and "two nodes, or up to nine" in out and "two-node" not in out
