"""The OCF agent: meta-data, ocf-tester against a live Ganesha, and deliberate return codes."""
import os
import shutil
import subprocess

import pytest

from conftest import ROOT, needs_root

AGENT = str(ROOT / "ra" / "exports")


def run_agent(action, env_extra, timeout=60):
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "OCF_ROOT": "/usr/lib/ocf",
           "OCF_RESOURCE_INSTANCE": "gha_test"}
    env.update({f"OCF_RESKEY_{k}": v for k, v in env_extra.items()})
    return subprocess.run([AGENT, action], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("agent", [AGENT, str(ROOT / "ra" / "notify")])
def test_meta_data_is_valid_ocf(agent):
    out = subprocess.run([agent, "meta-data"], capture_output=True, text=True, check=True).stdout
    assert '<action name="reload-agent"' in out and 'reloadable="1"' in out
    if shutil.which("xmllint") and os.path.isdir("/usr/share/resource-agents"):
        lint = subprocess.run(["xmllint", "--noout", "--valid", "-"], input=out, text=True,
                              capture_output=True, cwd="/usr/share/resource-agents")
        assert lint.returncode == 0, lint.stderr


def test_bad_parameters_are_configuration_errors():
    assert run_agent("start", {"server": "nfsd", "volume": "/x"}).returncode == 6
    assert run_agent("start", {"server": "ganesha", "volume": "relative"}).returncode == 6
    assert run_agent("start", {"server": "ganesha", "volume": "/x", "ip": "not-an-ip"}).returncode == 6
    # ...but a stop or a probe of a misconfigured resource never escalates
    assert run_agent("stop", {"server": "nfsd", "volume": "/x"}).returncode == 0
    assert run_agent("monitor", {"server": "nfsd", "volume": "/x"}).returncode == 7


def test_unknown_action_is_unimplemented():
    assert run_agent("frobnicate", {"server": "ganesha", "volume": "/x"}).returncode == 3


@pytest.fixture
def active_volume(ganesha, tmpfs_volume):
    (tmpfs_volume / "data").mkdir()
    (tmpfs_volume / "data" / "f.txt").write_text("x\n")
    ganesha.cli("volume", "init", str(tmpfs_volume), "--server", "ganesha", "--id-range", "600-699", check=True)
    ganesha.cli("export", "add", str(tmpfs_volume), "data", "--client", "127.0.0.1", check=True)
    params = {"server": "ganesha", "volume": str(tmpfs_volume), "config": str(ganesha.config)}
    return ganesha, tmpfs_volume, params


@needs_root
def test_ocf_tester_passes_for_ganesha(active_volume):
    lab, vol, params = active_volume
    argv = ["ocf-tester", "-n", "gha"]
    for k, v in params.items():
        argv += ["-o", f"{k}={v}"]
    proc = subprocess.run(argv + [AGENT], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "passed all tests" in proc.stdout, proc.stdout + proc.stderr


@needs_root
def test_start_monitor_stop_and_failure_codes(active_volume):
    lab, vol, params = active_volume
    assert run_agent("monitor", params).returncode == 7, "probe before start: not running"
    assert run_agent("start", params).returncode == 0
    assert run_agent("start", params).returncode == 0, "start is idempotent"
    assert run_agent("monitor", params | {"CRM_meta_interval": "10000"}).returncode == 0
    # an export withdrawn behind the agent's back is re-applied by the next monitor
    lab.remove_export(600)
    mon = run_agent("monitor", params | {"CRM_meta_interval": "10000"})
    assert mon.returncode == 0 and "re-applied" in mon.stderr
    assert 600 in lab.show_exports()
    # Ganesha dies: a recurring monitor reports a generic (locally recoverable) error
    lab.daemon.kill()
    assert run_agent("monitor", params | {"CRM_meta_interval": "10000"}).returncode == 1
    # the stop must still succeed (else the node gets fenced)
    assert run_agent("stop", params).returncode == 0
    assert run_agent("stop", params).returncode == 0, "stop is idempotent"
    assert run_agent("monitor", params).returncode == 7


@needs_root
@pytest.mark.parametrize("backend", ["fs_ng", "rados_cluster"])
def test_a_recovery_backend_that_cannot_take_over_is_refused(active_volume, tmp_path, backend):
    """The node's Ganesha config names a RecoveryBackend whose take-over loads nothing
    (fs_ng) or is refused (rados_*): validate-all and start answer OCF_ERR_CONFIGURED with
    the reason, and nothing is exported (issue 16, recovery-backend awareness)."""
    lab, vol, params = active_volume
    ok = run_agent("validate-all", params)
    assert ok.returncode == 0, ok.stderr
    assert "no cluster to compare this node's NFSv4 server scope" in ok.stderr
    conf = tmp_path / "node-ganesha.conf"
    conf.write_text(lab.daemon.config_path.read_text().replace("RecoveryBackend = fs;",
                                                               f"RecoveryBackend = {backend};"))
    settings = tmp_path / "gha.conf"
    settings.write_text(lab.config.read_text().replace(str(lab.daemon.config_path), str(conf)))
    bad = params | {"config": str(settings)}
    for action in ("validate-all", "start"):
        res = run_agent(action, bad)
        assert res.returncode == 6, (action, res.stderr)
        assert f"ocf-exit-reason:RecoveryBackend: {conf} sets NFSv4 RecoveryBackend = {backend}" in res.stderr
    assert 600 not in lab.show_exports()
    assert run_agent("monitor", bad).returncode == 7
    assert run_agent("stop", bad).returncode == 0


@needs_root
def test_start_on_unmounted_volume_is_generic_not_fatal(ganesha, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    params = {"server": "ganesha", "volume": str(bare), "config": str(ganesha.config)}
    start = run_agent("start", params)
    assert start.returncode == 1 and "not a mounted file system" in start.stderr
    assert run_agent("monitor", params).returncode == 7


@needs_root
def test_missing_ganesha_at_start_is_generic(active_volume):
    lab, vol, params = active_volume
    lab.daemon.stop()
    start = run_agent("start", params | {"CRM_meta_timeout": "2000"})  # waits up to half of it
    assert start.returncode == 1 and "not running" in start.stderr
    assert "ocf-exit-reason:" in start.stderr


@needs_root
def test_id_collision_bans_from_this_node_only(active_volume, tmp_path):
    lab, vol, params = active_volume
    other = tmp_path / "other"
    other.mkdir()
    block = tmp_path / "x.conf"
    block.write_text(f'EXPORT {{ Export_Id = 600; Path = "{other}"; Pseudo = "/other"; Access_Type = None; '
                     'Protocols = 4; FSAL { Name = VFS; } CLIENT { Clients = 127.0.0.1; Access_Type = RO; } }\n')
    lab.export_mgr("AddExport", str(block), "EXPORT(Export_Id=600)")
    start = run_agent("start", params)
    assert start.returncode == 4 and "already served" in start.stderr


@needs_root
def test_a_start_on_an_active_mark_restores_before_it_saves(active_volume):
    """The start of a volume whose node-local active mark is still there (the agent's
    idempotent start) must not save this node's view of the client records over the
    volume's copy before it restored it (issue 14, item 2). A real NFSv4 client leaves a
    record, the monitor saves it; then Ganesha comes back without any record, as on a
    fresh node: the start restores the client and the volume's copy is unchanged."""
    import json
    import time

    from ganesha_ha.lab.nfs.client import Nfs4Client

    lab, vol, params = active_volume
    assert run_agent("start", params).returncode == 0
    saved = vol / ".ganesha-ha" / "ganesha-recovery.json"
    with Nfs4Client("127.0.0.1", lab.port) as c:
        deadline = time.monotonic() + 30
        c.grace_aware(c.establish, deadline=deadline)
        f = c.grace_aware(lambda: c.open(f"{vol}/data/f.txt"), deadline=deadline)
        c.close_file(f)
        # the record is Ganesha's until the client's lease ends: save it while it is there
        assert run_agent("monitor", params | {"CRM_meta_interval": "10000"}).returncode == 0
    records = json.loads(saved.read_text())["records"]
    clients = [r for r in records if r["type"] == "dir" and "/" not in r["path"]]
    assert len(clients) == 1, records
    lab.daemon.stop()
    for entry in lab.recovery_root.iterdir():
        shutil.rmtree(entry)
    lab.daemon.start()
    start = run_agent("start", params)
    assert start.returncode == 0 and "1 client records restored" in start.stderr, start.stderr
    assert json.loads(saved.read_text())["records"] == records
    assert run_agent("stop", params).returncode == 0
