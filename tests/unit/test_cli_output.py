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
