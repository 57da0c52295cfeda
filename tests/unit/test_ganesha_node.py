"""This node's Ganesha as a take-over needs it (backends/ganesha_node.py) and the node
attributes that let nodes compare it (node_attrs.py): parsing only, no daemon.

The facts are Ganesha 4.3's (src/Protocols/NFS/nfs4_op_exchange_id.c for the scope,
src/support/nfs_read_conf.c for the keys and their defaults); measured scopes: owner
`gha-cf-two` -> scope `gha-cf-two_NFS-Ganesha` (docs/research/clients-facts.md 2.1).
"""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from ganesha_ha import node_attrs
from ganesha_ha.backends.ganesha_node import exports_of, expand_includes, load_node_config, parse_node_config

DEBIAN_DEFAULT = """
###################################################
#
# Ganesha Config Example
#
###################################################
EXPORT
{
	Export_Id = 77;
	Path = /mnt;
	Pseudo = /mnt;
	Access_Type = RW;
	FSAL { Name = VFS; }
}
"""


def test_defaults_are_ganeshas():
    c = parse_node_config(DEBIAN_DEFAULT)
    assert (c.recovery_backend, c.enable_nlm, c.grace_period, c.lease_lifetime) == ("fs", True, 90, 60)
    assert c.scope("node1") == "node1_NFS-Ganesha"
    assert c.takeover_problem() is None
    assert c.reaper_tick() == 10


def test_scope_owner_and_the_rest_case_insensitive():
    c = parse_node_config("""
nfsv4 { server_scope = "cluster-a"; SERVER_OWNER = node1; recoverybackend = FS;
        Grace_Period = 90; lease_lifetime = 10; }
NFS_Core_Param { enable_nlm = false; }
""")
    assert c.scope("whatever") == "cluster-a"
    assert (c.recovery_backend, c.enable_nlm, c.lease_lifetime, c.reaper_tick()) == ("fs", False, 10, 5)


def test_owner_alone_makes_the_scope():
    """Setting Server_Owner alone also makes the scopes equal across nodes (the notes, 2.1)."""
    c = parse_node_config("NFSV4 { Server_Owner = shared; }")
    assert c.scope("node1") == c.scope("node2") == "shared_NFS-Ganesha"


@pytest.mark.parametrize("backend, words", [("fs_ng", "loads no record"), ("rados_ng", "refuses take-over"),
                                            ("rados_cluster", "does not support takeover"),
                                            ("rados_kv", "RADOS objects"), ("nonsense", "Ganesha 4.3 knows")])
def test_backends_that_cannot_take_over_are_named_with_the_reason(backend, words):
    problem = parse_node_config(f"NFSv4 {{ RecoveryBackend = {backend}; }}", "/etc/g.conf").takeover_problem()
    assert problem is not None and words in problem and f"RecoveryBackend = {backend}" in problem
    assert problem.startswith("/etc/g.conf sets") and "RecoveryBackend = fs" in problem


def test_includes_are_followed_relative_to_the_top_files_directory(tmp_path: Path):
    """At every depth, as Ganesha 4.3 does (conf_lex.l new_file's conf_dir; measured, tryout5 E:
    the agent took a nested include from the including file's directory, another file)."""
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "v4.conf").write_text('NFSv4 { Server_Scope = "from-include"; RecoveryBackend = fs_ng; }\n'
                                            '%include "nlm.conf"\n')
    (tmp_path / "nlm.conf").write_text("NFS_CORE_PARAM { Enable_NLM = no; }\n")
    (tmp_path / "d" / "nlm.conf").write_text("NFS_CORE_PARAM { Enable_NLM = yes; }\n")   # not what Ganesha reads
    main = tmp_path / "ganesha.conf"
    main.write_text('%include "d/v4.conf"\n')
    c, why = load_node_config(str(main))
    assert why is None and c is not None
    assert (c.server_scope, c.recovery_backend, c.enable_nlm) == ("from-include", "fs_ng", False)
    (tmp_path / "loop.conf").write_text('%include "loop.conf"\n')
    with pytest.raises(ValueError, match="nested deeper"):
        expand_includes(tmp_path / "loop.conf")
    c, why = load_node_config(str(tmp_path / "missing.conf"))
    assert c is None and "missing.conf" in (why or "")
    (tmp_path / "bad.conf").write_text("NFSv4 { Server_Scope = ")
    c, why = load_node_config(str(tmp_path / "bad.conf"))
    assert c is None and why


SCOPES = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7e, blacklist_characters='"\\{};=,#\''),
                 min_size=1, max_size=255)


@hsettings(max_examples=200, deadline=None)
@given(SCOPES, st.sampled_from(["NFSv4", "NFSV4", "nfsv4"]))
def test_any_scope_written_quoted_reads_back(scope, block):
    assert parse_node_config(f'{block} {{ Server_Scope = "{scope}"; }}').scope("h") == scope


def test_attrd_query_lines_parse_and_values_round_trip():
    text = ('name="ganesha-ha-server-scope" host="node1" value="cluster_NFS-Ganesha"\n'
            'name="ganesha-ha-server-scope" host="node2" value="a b=c"\n'
            'name="ganesha-ha-server-scope" host="node3" value=""\n'
            'name="other" host="node4" value="x"\n')
    assert node_attrs.parse_query(text, "ganesha-ha-server-scope") == {"node1": "cluster_NFS-Ganesha",
                                                                       "node2": "a b=c"}
    assert not node_attrs.publishable('has"quote') and not node_attrs.publishable("two\nlines")
    assert node_attrs.publishable("node1_NFS-Ganesha")


def test_the_query_of_every_node_runs_without_the_resource_meta_variables():
    # Pacemaker 2.1.5's attrd_updater -Q -A answers for OCF_RESKEY_CRM_meta_on_node only
    # (pcmk__node_attr_target): the agent's environment has it at every action
    env = {"PATH": "/usr/bin", "OCF_RESKEY_CRM_meta_on_node": "node1", "OCF_RESKEY_CRM_meta_on_node_uuid": "1",
           "CRM_meta_container_attribute_target": "host", "OCF_RESKEY_CRM_meta_physical_host": "h",
           "OCF_RESKEY_volume": "/srv/v", "OCF_ROOT": "/usr/lib/ocf"}
    assert node_attrs.query_env(env) == {"PATH": "/usr/bin", "OCF_RESKEY_volume": "/srv/v",
                                         "OCF_ROOT": "/usr/lib/ocf"}


@hsettings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=300))
def test_what_is_published_is_what_a_query_gives_back(value):
    if not node_attrs.publishable(value):
        return
    line = f'name="n" host="h" value="{value}"'
    assert node_attrs.parse_query(line, "n") == {"h": value}


def _fake_attrd(tmp_path, monkeypatch, publish_rc: int = 0, query: str = "", query_err: str = "",
                query_rc: int = 0) -> Path:
    """An attrd_updater standing in for Pacemaker's (the edge of node_attrs): the query marks
    that it ran and answers `query`; the publish waits up to 2 s for that mark, then exits
    `publish_rc`, so a publish that goes first alone never sees it. Each writes its argv and
    environment to a log."""
    mark, log = tmp_path / "queried", tmp_path / "calls"
    script = tmp_path / "attrd_updater"
    script.write_text(f"""#!/bin/sh
echo "$* | $(env | grep -c CRM_meta)" >> {log}
case "$1" in
-Q) touch {mark}; printf '%s' '{query}'; printf '%s' '{query_err}' >&2; exit {query_rc} ;;
-p) i=0; while [ ! -e {mark} ] && [ $i -lt 200 ]; do sleep 0.01; i=$((i+1)); done
    [ -e {mark} ] || exit 99; exit {publish_rc} ;;
esac
""")
    script.chmod(0o755)
    monkeypatch.setattr(node_attrs, "ATTRD_UPDATER", str(script))
    monkeypatch.setenv("OCF_RESKEY_CRM_meta_on_node", "node1")
    return log


def test_the_publish_and_the_query_run_at_once_and_answer_as_each_alone(tmp_path, monkeypatch):
    line = 'name="s" host="node2" value="x_NFS-Ganesha"\n'
    log = _fake_attrd(tmp_path, monkeypatch, query=line)
    assert node_attrs.publish_and_read("s", "mine", timeout=5) == (True, {"node2": "x_NFS-Ganesha"})
    calls = sorted(log.read_text().splitlines())
    assert calls == ["-Q -A -n s | 0", "-p -n s -U mine | 1"], "the query without the meta variables"


def test_a_publish_without_a_cluster_is_false_whatever_the_query_says(tmp_path, monkeypatch):
    _fake_attrd(tmp_path, monkeypatch, publish_rc=1, query_rc=1, query_err="could not connect")
    assert node_attrs.publish_and_read("s", "mine", timeout=5) == (False, None)


def test_an_attribute_nobody_set_is_an_empty_answer_not_no_cluster(tmp_path, monkeypatch):
    _fake_attrd(tmp_path, monkeypatch, query_rc=6, query_err="Could not query value of s: No such device")
    assert node_attrs.publish_and_read("s", "mine", timeout=5) == (True, {})


def test_no_attrd_updater_or_an_unpublishable_value_is_no_cluster(tmp_path, monkeypatch):
    monkeypatch.setattr(node_attrs, "ATTRD_UPDATER", str(tmp_path / "missing"))
    assert node_attrs.publish_and_read("s", "mine") == (False, None)
    _fake_attrd(tmp_path, monkeypatch)
    assert node_attrs.publish_and_read("s", 'has"quote') == (False, None)
    assert not (tmp_path / "calls").exists(), "nothing run for a value that cannot be published"


def test_an_attrd_updater_that_hangs_is_killed_and_counts_as_no_answer(tmp_path, monkeypatch):
    script = tmp_path / "attrd_updater"
    script.write_text("#!/bin/sh\nexec sleep 30\n")
    script.chmod(0o755)
    monkeypatch.setattr(node_attrs, "ATTRD_UPDATER", str(script))
    assert node_attrs.publish_and_read("s", "mine", timeout=0.2) == (False, None)


def test_export_blocks_of_the_volume_in_the_node_config_are_named():
    conf = parse_node_config('EXPORT { Export_Id = 77; Path = "/srv/vol/g2"; Pseudo = /g2; FSAL { Name = VFS; } }\n'
                             'export { export_id = 5; path = /srv/volume2; }\n'          # a sibling, not inside
                             'EXPORT { Export_Id = 6001; Path = /elsewhere; }\n'          # one of the volume's ids
                             'EXPORT { Export_Id = 8; Path = /srv/vol; }\n', "/etc/ganesha/ganesha.conf")
    assert [(e.export_id, e.path, e.line) for e in conf.exports] == [
        (77, "/srv/vol/g2", 1), (5, "/srv/volume2", 2), (6001, "/elsewhere", 3), (8, "/srv/vol", 4)]
    [warning] = exports_of(conf, "/srv/vol", {6001})
    assert warning.startswith("remove the EXPORT block(s) of Export_Id 77 (/srv/vol/g2) at /etc/ganesha/ganesha.conf "
                              "line 1, Export_Id 6001 (/elsewhere) at /etc/ganesha/ganesha.conf line 3, Export_Id 8 "
                              "(/srv/vol) at /etc/ganesha/ganesha.conf line 4 from the Ganesha config of every node")
    assert exports_of(conf, "/srv/other", {1}) == []
