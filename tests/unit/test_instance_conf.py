"""A volume's own Ganesha instance on paper (backends/ganesha_instance_conf.py) and the kernel
facts the instance is checked with (linux_net.py): pure.

The log lines and /proc texts below are copies of what ganesha.nfsd 4.3 and this kernel
wrote (measured for docs/research/clients-facts.md section 5 and for this module)."""
from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings, strategies as st
from strategies import nasty_text

from ganesha_ha import linux_net
from ganesha_ha.backends import ganesha_conf_parse
from ganesha_ha.backends.ganesha_instance_conf import (BUS_DENIED, BUS_TAKEN, FAILED, NOT_LOCAL, PIDFILE_LOCKED,
                                                      PORT_IN_USE, PREFIX_RE,
                                                      UNRESOLVED, InstanceConfig, bind_addr, bus_name, check_ip,
                                                      covers, dbus_prefix, diagnose, next_epoch, parse_epoch,
                                                      render_config, server_scope)
from ganesha_ha.errors import ValidationError
from ganesha_ha.model import Export, KnfsdOptions

U = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"


# ---- names -------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.uuids())
def test_every_volume_gets_a_prefix_ganesha_accepts_and_a_scope_of_its_own(u):
    prefix = dbus_prefix(str(u))
    assert PREFIX_RE.fullmatch(prefix) and prefix == f"gha_{u.hex}"
    assert bus_name(prefix) == f"gha_{u.hex}.org.ganesha.nfsd"
    scope = server_scope(str(u))
    assert 1 <= len(scope) <= 255 and scope == f"ganesha-ha-{u}" and server_scope(str(u).upper()) == scope


@settings(max_examples=300, deadline=None)
@given(nasty_text)
def test_anything_but_a_canonical_uuid_is_refused_not_mangled(text):
    try:
        canonical = str(uuid.UUID(text)) == text.lower()
    except ValueError:
        canonical = False
    if canonical:
        assert PREFIX_RE.fullmatch(dbus_prefix(text))
        return
    with pytest.raises(ValidationError, match="volume_uuid"):
        dbus_prefix(text)


def test_ganesha_s_own_prefix_rule():
    """src/dbus/dbus_server.c is_valid_dbus_prefix: a letter or _, then letters, digits, _."""
    assert PREFIX_RE.fullmatch("gha_1") and PREFIX_RE.fullmatch("_x")
    for bad in ("g-A", "1abc", "a.b", "", "a" * 256):
        assert not PREFIX_RE.fullmatch(bad)


# ---- the config file -------------------------------------------------------------------------

def _cfg(**kw) -> InstanceConfig:
    base = dict(ip="192.0.2.10", port=2049, prefix=dbus_prefix(U), recovery_root="/srv/v/.ganesha-ha/nfs4-recovery",
                scope=server_scope(U), grace_period=90, lease_lifetime=60)
    return InstanceConfig(**(base | kw))


def _exp(path: str, export_id: int, pseudo: str) -> Export:
    return Export(path=path, export_id=export_id, knfsd=KnfsdOptions("1"), pseudo=pseudo, clients=("192.0.2.0/24(rw)",))


def test_rendered_config_is_what_an_instance_needs():
    text = render_config(_cfg(), [_exp("data", 100, "/data"), _exp("b", 101, "/b")], "/srv/v")
    blocks = ganesha_conf_parse.parse_config(text)
    assert [b.name for b in blocks] == ["NFS_CORE_PARAM", "NFSV4", "EXPORT", "EXPORT"]
    core, v4 = blocks[0], blocks[1]
    assert dict(core.params) == {"Bind_Addr": ["192.0.2.10"], "NFS_Port": ["2049"], "Protocols": ["4"],
                                 "Enable_NLM": ["false"], "Enable_RQUOTA": ["false"], "Enable_UDP": ["false"],
                                 "Dbus_Name_Prefix": [dbus_prefix(U)], "Clustered": ["false"]}
    assert dict(v4.params) == {"RecoveryBackend": ["fs"], "RecoveryRoot": ["/srv/v/.ganesha-ha/nfs4-recovery"],
                               "Grace_Period": ["90"], "Lease_Lifetime": ["60"], "Server_Scope": [server_scope(U)]}
    assert [b.get("Protocols") for b in blocks[2:]] == [["4"], ["4"]]   # NFSv4 only, whatever the settings say
    assert [b.get("Path") for b in blocks[2:]] == [["/srv/v/data"], ["/srv/v/b"]]


def test_bind_addr_is_the_address_itself():
    assert "Bind_Addr = 2001:db8::7;" in render_config(_cfg(ip="2001:db8:0::7"), [], "/v")
    assert 'Plugins_Dir = "/opt/g a\\"b";' in render_config(_cfg(plugins_dir='/opt/g a"b'), [], "/v")
    for bad in ("", None, "host.example", "192.0.2.1; Enable_NLM = true", "192.0.2.300"):
        with pytest.raises(ValidationError, match="^ip: "):
            check_ip(bad)
        with pytest.raises(ValidationError):
            render_config(_cfg(ip=bad or ""), [], "/v")
    with pytest.raises(ValidationError, match="dbus_name_prefix"):
        render_config(_cfg(prefix="g-A"), [], "/v")


@settings(max_examples=200, deadline=None)
@given(nasty_text)
def test_a_recovery_root_never_adds_a_parameter_or_block(root):
    try:
        text = render_config(_cfg(recovery_root=root), [], "/v")
    except ValidationError:
        return  # control characters: refused
    blocks = ganesha_conf_parse.parse_config(text)
    assert [b.name for b in blocks] == ["NFS_CORE_PARAM", "NFSV4"]
    assert blocks[1].get("RecoveryRoot") == [root] and len(blocks[1].params) == 5


# ---- listeners ---------------------------------------------------------------------------------

@pytest.mark.parametrize("listen,ip,expected", [
    ("0.0.0.0", "192.0.2.1", True), ("::", "192.0.2.1", True), ("::", "2001:db8::1", True),
    ("0.0.0.0", "2001:db8::1", False), ("192.0.2.1", "192.0.2.1", True), ("::ffff:192.0.2.1", "192.0.2.1", True),
    ("192.0.2.2", "192.0.2.1", False), ("::ffff:192.0.2.2", "192.0.2.1", False), ("2001:db8::1", "2001:db8::1", True),
])
def test_covers(listen, ip, expected):
    assert covers(listen, ip) is expected


# what /proc/net/tcp6 and /proc/net/tcp held with two instances on 10.213.90.1/.2, sshd on
# 0.0.0.0:22 and the 4.3 bug's `[::]:2049` (x86_64: little-endian words)
TCP6 = """  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0000000000000000FFFF0000015AD50A:0801 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4101 1 0000000000000000 100 0 0 10 0
   1: 0000000000000000FFFF0000025AD50A:0801 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4102 1 0000000000000000 100 0 0 10 0
   2: 00000000000000000000000000000000:0801 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4103 1 0000000000000000 100 0 0 10 0
   3: 0000000000000000FFFF0000015AD50A:0801 0000000000000000FFFF00000B5AD50A:03FF 01 00000000:00000000 00:00000000 00000000     0        0 4104 1 0000000000000000 20 4 30 10 -1
"""
TCP4 = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 17 1 0000000000000000 100 0 0 10 0
garbage
"""


def test_proc_net_tcp_is_read_as_the_kernel_writes_it():
    import sys

    if sys.byteorder != "little":
        pytest.skip("the sample was written by a little-endian kernel")
    assert linux_net.parse_proc_net_tcp(TCP6) == [("::ffff:10.213.90.1", 2049, 0x0A, 4101),
                                              ("::ffff:10.213.90.2", 2049, 0x0A, 4102),
                                              ("::", 2049, 0x0A, 4103), ("::ffff:10.213.90.1", 2049, 1, 4104)]
    assert linux_net.parse_proc_net_tcp(TCP4) == [("0.0.0.0", 22, 0x0A, 17)]


# ---- what a dying instance says ------------------------------------------------------------------

LINE = "30/11/2026 05:55:16 : epoch 6b0d0fc4 : vm : nfs-ganesha-10915[main] {}"


@pytest.mark.parametrize("lines,cause,said", [
    (["Bind_sockets_V6 :DISP :WARN :Cannot bind NFS tcp6 socket, error 98 (Address already in use)",
      "Bind_sockets :DISP :FATAL :Error binding to V6 interface. Cannot continue."],
     PORT_IN_USE, "Cannot bind NFS tcp6 socket, error 98 (Address already in use)"),
    (["Bind_sockets_V6 :DISP :WARN :Cannot bind NFS tcp6 socket, error 99 (Cannot assign requested address)"],
     NOT_LOCAL, "Cannot bind NFS tcp6 socket, error 99 (Cannot assign requested address)"),
    (["config_errs_to_log :CONFIG :CRIT :Config File (/r/g.conf:2): No IP address found for 127.0.0.2 because:Name "
      "or service not known"], UNRESOLVED,
     "Config File (/r/g.conf:2): No IP address found for 127.0.0.2 because:Name or service not known"),
    (['gsh_dbus_pkginit :DBUS :CRIT :server bus reg failed (gha_1.org.ganesha.nfsd, Connection ":1.1" is not allowed '
      'to own the service "gha_1.org.ganesha.nfsd" due to security policies in the configuration file)',
      "gsh_dbus_thread :DBUS :CRIT :DBUS not initialized, service thread exiting"], BUS_DENIED,
     'server bus reg failed (gha_1.org.ganesha.nfsd, Connection ":1.1" is not allowed to own the service '
     '"gha_1.org.ganesha.nfsd" due to security policies in the configuration file)'),
    (["gsh_dbus_pkginit :DBUS :CRIT :server failed becoming primary bus owner"], BUS_TAKEN,
     "server failed becoming primary bus owner"),
    (["main :MAIN :FATAL :fcntl(3) failed, Ganesha already started"], PIDFILE_LOCKED,
     "fcntl(3) failed, Ganesha already started"),
    (["nfs_start :NFS STARTUP :EVENT :NFS SERVER INITIALIZED", "x :CONFIG :CRIT :one", "main :MAIN :FATAL :the end",
      "z :MAIN :CRIT :later"], FAILED, "the end"),
    (["a :A :EVENT :x", "b :B :MAJ :it broke : badly"], FAILED, "it broke : badly"),
])
def test_diagnose(lines, cause, said):
    assert diagnose([LINE.format(line) for line in lines]) == (cause, said)


def test_diagnose_of_nothing_or_of_stderr():
    assert diagnose([]) == (FAILED, "")
    assert diagnose(["ganesha.nfsd: invalid option -- 'Q'", ""]) == (FAILED, "ganesha.nfsd: invalid option -- 'Q'")


@given(st.one_of(st.none(), st.integers(0, 2**32)), st.floats(0, 2**32))
def test_each_instance_gets_an_epoch_above_the_last(last, now):
    """Client ids, stateids and the write verifier come from it: a restart within the same
    second, or on a node whose clock is behind, must never reuse it."""
    epoch = next_epoch(last, now)
    assert epoch >= int(now) and (last is None or epoch > last)
    assert epoch == (int(now) if last is None or last < int(now) else last + 1)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)).map(str))
def test_bind_addr_reads_back_what_was_rendered(ip):
    """The monitor compares the running instance's address with the resource's ip from here."""
    assert bind_addr(render_config(_cfg(ip=ip), [_exp("data", 100, "/data")], "/srv/v")) == check_ip(ip)
    assert bind_addr("NFS_CORE_PARAM {\n    NFS_Port = 2049;\n}\n") is None


NOW = 1_780_000_000.5


@pytest.mark.parametrize("raw, last, why", [
    (None, None, None), (b"", None, None), (b" \n", None, None),
    (b"1779999999\n", 1779999999, None), (str(2**32 - 2).encode(), None, "more than a day past"),
    (b"garbage\n", None, "not a number"), (b"-5", None, "not a number"), (b"1e9", None, "not a number"),
    (b"\xff\xfe", None, "not a number"), ("\u0661\u0662".encode(), None, "not a number"),   # Arabic-Indic digits
    (str(2**32 - 1).encode(), None, "past Ganesha's 32-bit epoch"),
    (str(2**64).encode(), None, "past Ganesha's 32-bit epoch"),
    (str(int(NOW) + 86400).encode(), int(NOW) + 86400, None),
    (str(int(NOW) + 86401).encode(), None, "more than a day past this node's clock"),
])
def test_the_epoch_file_is_used_only_when_it_holds_a_32_bit_epoch(raw, last, why):
    got, reason = parse_epoch(raw, NOW)
    assert got == last
    assert (reason is None) if why is None else (why in reason)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=30), st.integers(-2**70, 2**70).map(lambda n: str(n).encode())),
       st.floats(0, 2**32 - 2 - 86401))
def test_whatever_the_epoch_file_holds_the_next_epoch_fits_32_bits(raw, now):
    """Ganesha keeps the epoch's low 32 bits in client ids and stateids: the next one must fit."""
    last, reason = parse_epoch(raw, now)
    assert (last is None) or (reason is None and 0 <= last < 2**32 - 1)
    assert 0 <= next_epoch(last, now) < 2**32
