"""Issue 3 acceptance through the CLI and the agent: real exportfs in a private /var/lib/nfs,
a loop-mounted ext4 image as the volume, failover = unmount, mount again, start again."""
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, needs_root
from knfsd_ns import bind, etab_lines, mount_tmpfs, private_nfs_state, skip_reason

pytestmark = [needs_root, pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))]
AGENT = str(ROOT / "ra" / "exports")


class Img:
    """An ext4 image standing in for the DRBD device: mounted on one 'node' at a time."""

    def __init__(self, path: Path, mountpoint: Path):
        self.path, self.mountpoint = path, mountpoint
        subprocess.run(["truncate", "-s", "32M", str(path)], check=True)
        subprocess.run(["mkfs.ext4", "-F", "-q", str(path)], check=True)
        mountpoint.mkdir(exist_ok=True)
        self.loop = None

    def mount(self):
        self.loop = subprocess.run(["losetup", "--find", "--show", str(self.path)], check=True,
                                   capture_output=True, text=True).stdout.strip()
        subprocess.run(["mount", self.loop, str(self.mountpoint)], check=True)

    def umount(self):
        subprocess.run(["umount", str(self.mountpoint)], check=True)
        subprocess.run(["losetup", "-d", self.loop], check=True)
        self.loop = None


def gha(config, *args, check=True):
    proc = subprocess.run([sys.executable, "-m", "ganesha_ha.cli", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=60)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def agent(action, config, volume):
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "OCF_ROOT": "/usr/lib/ocf", "OCF_RESOURCE_INSTANCE": "v",
           "OCF_RESKEY_server": "knfsd", "OCF_RESKEY_volume": str(volume), "OCF_RESKEY_config": str(config)}
    return subprocess.run([AGENT, action], env=env, capture_output=True, text=True, timeout=60)


def lines_for(state, mountpoint):
    return sorted(l for l in etab_lines(state) if l.startswith(str(mountpoint) + "/"))


def test_knfsd_cli_failover_and_rmtab(tmp_path):
    config = tmp_path / "gha.conf"
    config.write_text(f"[node]\nruntime_dir = {tmp_path / 'run'}\n")
    img = Img(tmp_path / "vol.img", tmp_path / "mnt")
    with private_nfs_state(tmp_path / "ns") as state:
        # exportfs resolves host names; this machine has no DNS, so the name comes from a
        # private /etc/hosts (bound inside the test's own mount namespace only)
        hosts = tmp_path / "hosts"
        hosts.write_text(Path("/etc/hosts").read_text() + "192.0.2.99 host.example\n")
        bind(hosts, Path("/etc/hosts"))
        img.mount()
        try:
            mp = img.mountpoint
            (mp / "share").mkdir()
            gha(config, "volume", "init", str(mp), "--server", "knfsd")
            gha(config, "volume", "start", str(mp))
            gha(config, "export", "add", str(mp), "share", "--client", "192.0.2.0/24(rw,sync,no_root_squash)",
                "--client", "host.example(ro)")
            lines = lines_for(state, mp)
            assert len(lines) == 2, lines
            fsids = {part for l in lines for part in l.split("(")[1].rstrip(")").split(",") if part.startswith("fsid=")}
            assert len(fsids) == 1, "both clients carry the export's one fsid"
            assert any("192.0.2.0/24(rw," in l for l in lines) and any("(ro," in l for l in lines)
            # update changes options live
            gha(config, "export", "update", str(mp), "share", "--client", "192.0.2.0/24(ro,sync)")
            lines = lines_for(state, mp)
            assert len(lines) == 1 and "192.0.2.0/24(ro," in lines[0]
            gha(config, "export", "update", str(mp), "share", "--client", "192.0.2.0/24(rw,sync,no_root_squash)",
                "--client", "host.example(ro)")
            before = lines_for(state, mp)
            # clients mounted: rmtab lines for this volume and for another volume
            (state / "rmtab").write_text(f"192.0.2.7:{mp}/share:0x00000001\n10.9.9.9:/srv/other:0x00000001\n")
            assert agent("monitor", config, mp).returncode == 0  # saves the volume's rmtab lines
            assert "192.0.2.7" in (mp / ".ganesha-ha" / "rmtab").read_text()
            # failover: stop here, unmount, mount again (the other node), start
            assert agent("stop", config, mp).returncode == 0
            assert lines_for(state, mp) == []
            assert (state / "rmtab").read_text() == "10.9.9.9:/srv/other:0x00000001\n", "other volume untouched"
            img.umount()
            (state / "etab").write_text("")  # the new node starts with nothing of ours
            img.mount()
            assert agent("monitor", config, mp).returncode == 7, "probe on the new node: not running"
            assert agent("start", config, mp).returncode == 0
            assert lines_for(state, mp) == before, "byte-identical etab lines after the move"
            rmtab = (state / "rmtab").read_text().splitlines()
            assert f"192.0.2.7:{mp}/share:0x00000001" in rmtab and "10.9.9.9:/srv/other:0x00000001" in rmtab
            assert len(rmtab) == len(set(rmtab)) == 2
            gha(config, "export", "remove", str(mp), "share")
            assert lines_for(state, mp) == []
            assert agent("stop", config, mp).returncode == 0
        finally:
            if img.loop:
                img.umount()


def test_a_directory_gone_from_the_volume_is_not_live_and_named(tmp_path):
    """exportfs of a directory that is not there says "Failed to stat" and still writes the etab
    line (exit 1, nfs-utils 2.6.2), so an etab read-back alone called it live at start, status and
    monitor. It is named instead, the volume's other exports serve, and it goes live once the
    directory is back."""
    import json

    config = tmp_path / "gha.conf"
    config.write_text(f"[node]\nruntime_dir = {tmp_path / 'run'}\n")
    with private_nfs_state(tmp_path / "ns") as state:
        mp = tmp_path / "vol"
        mount_tmpfs(mp)
        for d in ("a", "b"):
            (mp / d).mkdir()
        gha(config, "volume", "init", str(mp), "--server", "knfsd")
        gha(config, "volume", "start", str(mp))
        for d in ("a", "b"):
            gha(config, "export", "add", str(mp), d, "--client", "127.0.0.1(rw)")
        gha(config, "volume", "stop", str(mp))
        (mp / "b").rename(mp / "b.gone")
        proc = gha(config, "volume", "start", str(mp), check=False)
        assert proc.returncode == 7, proc.stderr
        assert f"no directory {mp / 'b'} on this node" in proc.stderr, proc.stderr
        assert [l.split()[0] for l in lines_for(state, mp)] == [str(mp / "a")]
        status = json.loads(gha(config, "volume", "status", str(mp), "--json").stdout)
        assert [(e["path"], e["live"]) for e in status["exports"]] == [("a", True), ("b", False)]
        mon = agent("monitor", config, mp)
        assert mon.returncode == 190 and f"no directory {mp / 'b'}" in mon.stderr, mon.stderr
        (mp / "b.gone").rename(mp / "b")
        assert agent("monitor", config, mp).returncode == 0
        assert [l.split()[0] for l in lines_for(state, mp)] == [str(mp / "a"), str(mp / "b")]
        assert agent("stop", config, mp).returncode == 0


def test_ocf_tester_passes_for_knfsd(tmp_path):
    config = tmp_path / "gha.conf"
    config.write_text(f"[node]\nruntime_dir = {tmp_path / 'run'}\n")
    with private_nfs_state(tmp_path / "ns") as state:
        mp = tmp_path / "vol"
        mp.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "gha-knfsd-ocft", str(mp)], check=True)
        try:
            (mp / "d").mkdir()
            gha(config, "volume", "init", str(mp), "--server", "knfsd")
            gha(config, "export", "add", str(mp), "d", "--client", "127.0.0.1(rw)")
            proc = subprocess.run(["ocf-tester", "-n", "gha", "-o", "server=knfsd", "-o", f"volume={mp}",
                                   "-o", f"config={config}", AGENT], capture_output=True, text=True, timeout=300)
            assert proc.returncode == 0 and "passed all tests" in proc.stdout, proc.stdout + proc.stderr
            assert lines_for(state, mp) == [], "ocf-tester's last action is a stop"
        finally:
            subprocess.run(["umount", "-l", str(mp)], check=True)


def test_a_start_on_an_active_mark_restores_before_it_saves(tmp_path):
    """Issue 14, item 2 with knfsd: start, a client mounts (its rmtab line), the monitor
    saves it to the volume; then this node loses its etab and rmtab as a fresh node has
    none, the volume is mounted again, and the agent starts while its active mark is still
    there: the saved line must be restored, not replaced by the empty host file."""
    config = tmp_path / "gha.conf"
    config.write_text(f"[node]\nruntime_dir = {tmp_path / 'run'}\n")
    img = Img(tmp_path / "vol.img", tmp_path / "mnt")
    with private_nfs_state(tmp_path / "ns") as state:
        img.mount()
        try:
            mp = img.mountpoint
            (mp / "share").mkdir()
            gha(config, "volume", "init", str(mp), "--server", "knfsd")
            gha(config, "export", "add", str(mp), "share", "--client", "192.0.2.0/24(rw)")
            assert agent("start", config, mp).returncode == 0
            line = f"192.0.2.7:{mp}/share:0x00000001"
            (state / "rmtab").write_text(line + "\n")
            assert agent("monitor", config, mp).returncode == 0
            saved = mp / ".ganesha-ha" / "rmtab"
            assert line in saved.read_text().splitlines()
            (state / "etab").write_text("")
            (state / "rmtab").write_text("")
            img.umount()
            img.mount()
            start = agent("start", config, mp)
            assert start.returncode == 0 and "1 client records restored" in start.stderr, start.stderr
            assert line in saved.read_text().splitlines()
            assert (state / "rmtab").read_text() == line + "\n"
            assert len(lines_for(state, mp)) == 1
            assert agent("stop", config, mp).returncode == 0
        finally:
            if img.loop:
                img.umount()


def test_one_unreadable_registry_does_not_hide_the_other_volumes_from_export_list(tmp_path):
    """tryout5: `export list` (every volume mounted here) with one registry broken printed that
    registry's error alone and exit 3: at 3 a.m. the healthy volumes' exports vanished from it.
    And an error of the settings file was led by the volume given, as if the volume were wrong."""
    config = tmp_path / "gha.conf"
    config.write_text(f"[node]\nruntime_dir = {tmp_path / 'run'}\n")
    with private_nfs_state(tmp_path / "ns"):
        good, bad = tmp_path / "good", tmp_path / "bad"
        for mp in (good, bad):
            mount_tmpfs(mp)
            (mp / "d").mkdir()
            gha(config, "volume", "init", str(mp), "--server", "knfsd", "--id-range", "1-9" if mp == good else "10-19")
            gha(config, "export", "add", str(mp), "d", "--client", "10.0.0.1(rw)")
        (bad / ".ganesha-ha" / "registry.json").write_text("{broken")
        r = gha(config, "export", "list", "--json", check=False)
        assert r.returncode == 3, r.stderr
        assert f"{good}/d" in [e["directory"] for e in __import__("json").loads(r.stdout)]
        assert r.stderr.startswith(f"ganesha-ha: error: {bad}/.ganesha-ha/registry.json is not valid JSON"), r.stderr
        r = gha(config, "export", "list", str(bad), check=False)      # named: its error, as before
        assert r.returncode == 3 and r.stdout == ""
        r = gha(tmp_path / "missing.conf", "volume", "status", str(good), check=False)
        assert r.returncode == 2 and r.stderr == f"ganesha-ha: error: {tmp_path}/missing.conf: configuration file not found\n"
