"""Exit codes: every error's code is in the README's table, and the CLI keeps to it."""
from __future__ import annotations

import json
import re

import pytest

from conftest import ROOT
from fake_backend import FakeBackend
from ganesha_ha import cli, errors
from ganesha_ha.settings import load_settings
from ganesha_ha.volume import Volume


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def documented_codes() -> set[int]:
    text = " ".join((ROOT / "README.md").read_text().split())
    table = text[text.index("Errors are one line on stderr. Exit codes:"):]
    table = table[:table.index(". `export apply` and `import` exit")]
    return {int(n) for n in re.findall(r"`(\d+)`", table)}


def test_every_error_exits_with_a_documented_code():
    codes = {errors.GaneshaHAError.exit_code} | {c.exit_code for c in _subclasses(errors.GaneshaHAError)}
    assert codes <= documented_codes()
    assert documented_codes() == set(range(8)) | {130, 141}


def cli_volume(tmp_path, monkeypatch, backend, settings: str = "", **kw) -> tuple:
    """(config, mount point, Volume): a volume on a fake backend that the CLI's commands use."""
    config = tmp_path / "gha.conf"
    config.write_text(f"[node]\nruntime_dir = {tmp_path / 'run'}\n{settings}")
    mp = tmp_path / "vol"
    mp.mkdir()
    vol = Volume(mp, load_settings(config), backend=backend, require_mounted=lambda p: None, **kw)
    monkeypatch.setattr(cli, "_volume", lambda args, settings: vol)
    return config, mp, vol


def test_monitor_of_a_volume_not_active_here_exits_3_not_7(tmp_path, monkeypatch, capsys):
    """7 means "the live server refused the change"; a volume started elsewhere is a state of
    this node, like one not mounted here (3)."""
    config, mp, vol = cli_volume(tmp_path, monkeypatch, FakeBackend("knfsd"))
    vol.init("knfsd", (1, 9))
    assert cli.main(["--config", str(config), "volume", "monitor", str(mp)]) == 3
    assert "not active on this node" in capsys.readouterr().err
    assert cli.main(["--config", str(config), "volume", "monitor", str(mp), "--json"]) == 3
    assert '"running": false' in capsys.readouterr().out
    vol.start()
    assert cli.main(["--config", str(config), "volume", "monitor", str(mp)]) == 0


def test_an_error_line_names_the_volume_it_is_about(tmp_path, monkeypatch, capsys):
    """One line a script over several volumes can log: the registry's "no export 'x' in this
    volume's registry" did not say which volume; a message that names it is left as it is."""
    config, mp, vol = cli_volume(tmp_path, monkeypatch, FakeBackend("knfsd"))
    vol.init("knfsd", (1, 9))
    for action in ("show", "remove"):
        assert cli.main(["--config", str(config), "export", action, str(mp), "nothere"]) == 4
        assert capsys.readouterr().err == f"ganesha-ha: error: {mp}: no export 'nothere' in this volume's registry\n"
    assert cli.main(["--config", str(config), "volume", "monitor", f"{mp}/"]) == 3
    assert capsys.readouterr().err == (f"ganesha-ha: error: {mp} is not active on this node "
                                       "(its start marks it active)\n")


def test_export_list_fits_100_columns_and_shows_volume_server_and_fsid():
    """Not on a terminal (pytest captures stdout): 100 columns."""
    from ganesha_ha.model import Export, KnfsdOptions

    exp = Export(path="projects/2024/very-long-directory-name", export_id=3000, pseudo="/projects/2024",
                 knfsd=KnfsdOptions("0b5b7f4e-1b2c-4d3e-8f9a-0123456789ab"),
                 clients=("192.0.2.0/24(rw,no_root_squash)", "backup.example.com(ro)", "@admins(rw)"), access="RO")
    rows = [cli._list_row("/srv/nfs/production-volume-01", "knfsd", exp, True),
            cli._list_row("/srv/nfs/vol2", "ganesha", exp.with_changes(path="data"), False)]
    lines = cli._list_table(rows).splitlines()
    assert lines[0].split() == cli.LIST_HEADER
    assert max(len(line) for line in lines) <= 100
    knfsd, ganesha = lines[1].split(), lines[2].split()
    assert knfsd[:3] == ["/srv/nfs/production-volume-01", "knfsd", "3000"] and knfsd[3].startswith("0b5b7f4e-1b")
    assert ganesha[:3] == ["/srv/nfs/vol2", "ganesha/VFS", "3000"] and ganesha[3].startswith("/projects/2") and ganesha[-2:] == ["not", "live"]
    assert "[RO]" in lines[1]
    # tryout5: volumes sharing a long prefix, cut at their ends, all read '/tmp/gha-t5/vo…'
    many = [cli._list_row(f"/srv/cluster-storage/exports/volume-{n}", "ganesha", exp.with_changes(path=f"d{n}"),
                          True) for n in ("alpha", "beta")]
    cut = [line.split()[0] for line in cli._list_table(many).splitlines()[1:]]
    assert len(set(cut)) == 2 and all(c.startswith("…") for c in cut), cut
    assert cut[0].endswith("volume-alpha") and cut[1].endswith("volume-beta")


def test_an_instance_grace_shorter_than_its_lease_is_refused_at_init(tmp_path, monkeypatch, capsys):
    """Found by a try-out: `--grace-period 5 --lease-lifetime 60` (or 0, or a lease above the
    node's grace) was taken, and every move then lost the state of clients that renew late."""
    config, mp, _ = cli_volume(tmp_path, monkeypatch, FakeBackend("ganesha"),
                               "[instance]\ngrace_period = 30\nlease_lifetime = 20\n")
    init = ["--config", str(config), "volume", "init", str(mp), "--server", "ganesha", "--ganesha-mode", "instance"]
    for times, said in ((["--grace-period", "5", "--lease-lifetime", "60"], "5 s is shorter than the lease (60 s)"),
                        (["--grace-period", "0"], "0 s is shorter than the lease (20 s, the node's [instance] "
                                                  "lease_lifetime)"),
                        (["--lease-lifetime", "40"], "30 s (the node's [instance] grace_period) is shorter than "
                                                     "the lease (40 s)")):
        assert cli.main([*init, *times]) == 2
        err = capsys.readouterr().err
        assert said in err and err.count("\n") == 1 and not (mp / ".ganesha-ha" / "registry.json").exists()
    assert cli.main([*init, "--grace-period", "20"]) == 0 and (mp / ".ganesha-ha" / "registry.json").exists()


def test_status_of_an_instance_volume_active_elsewhere_does_not_say_its_instance_died(tmp_path, monkeypatch,
                                                                                       capsys):
    """Found by a try-out: on every node but the active one, `volume status` said "live state
    unknown (the volume's ganesha.nfsd instance is not running (it exited or was killed) ...)"."""
    from fake_backend import FakeInstance

    backend = FakeInstance("ganesha")
    config, mp, vol = cli_volume(tmp_path, monkeypatch, backend, ip="192.0.2.1")
    vol.init("ganesha", (1, 9), "instance")
    (mp / "d").mkdir()
    assert cli.main(["--config", str(config), "export", "add", str(mp), "d", "--client", "*(rw)"]) == 0
    capsys.readouterr()
    assert cli.main(["--config", str(config), "volume", "status", str(mp)]) == 0
    out = capsys.readouterr().out
    assert "1 exports, not served here (its instance runs where the volume is active), not active on this node" in out
    assert "unknown" not in out
    assert cli.main(["--config", str(config), "volume", "status", str(mp), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["unavailable"] == "" and [e["live"] for e in data["exports"]] == [False]
    assert cli.main(["--config", str(config), "export", "show", str(mp), "d"]) == 0
    assert "state:       not live" in capsys.readouterr().out      # not "unknown": nothing runs here
    vol.start()
    backend.running = False       # active here and its instance gone: that is worth saying
    assert cli.main(["--config", str(config), "volume", "status", str(mp)]) == 0
    assert "live state unknown (the fake server is not running)" in capsys.readouterr().out


@pytest.mark.parametrize("action", ["add", "update"])
def test_the_fsal_option_reads_in_the_usage_line_as_it_is_typed(action, capsys):
    """tryout5: metavar NAME(key=value,...) lost its parentheses in argparse's usage line:
    `[--fsal NAMEkey=value,...]`."""
    with pytest.raises(SystemExit):
        cli.main(["export", action, "--help"])
    out = capsys.readouterr().out
    assert "NAMEkey" not in out and "[--fsal FSAL]" in " ".join(out.split())
    assert "NAME or NAME(key=value,...)" in " ".join(out.split())
