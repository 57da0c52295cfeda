"""FSALs against the real ganesha.nfsd (Debian 12's 4.3): MEM, NULL over VFS and PROXY_V4 exports
made live through the CLI and through the agent, read and written by a real NFSv4.1 client;
changes Ganesha makes in place and those it cannot; FSAL modules missing on the node; hostile
option values; what Ganesha's own parser says of the blocks rendered for FSALs that cannot run
here (GPFS, RGW, XFS)."""
from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, example, given, settings, strategies as st

from conftest import IS_ROOT, ROOT, free_port
from ganesha_ha.lab.ganesha_daemon import GaneshaDaemon
from ganesha_ha.lab.nfs.client import Nfs4Client
from strategies import nasty_text

AGENT = str(ROOT / "ra" / "exports")
PLUGINS = Path("/usr/lib/x86_64-linux-gnu/ganesha")
pytestmark = [pytest.mark.skipif(not IS_ROOT or shutil.which("ganesha.nfsd") is None,
                                 reason="needs root and ganesha.nfsd")]


def needs_module(*names: str):
    missing = [n for n in names if not (PLUGINS / f"libfsal{n.lower()}.so").exists()]
    return pytest.mark.skipif(bool(missing), reason=f"FSAL module(s) {missing} not installed "
                                                    "(scripts/install-deps installs them)")


def client(lab) -> Nfs4Client:
    c = Nfs4Client("127.0.0.1", lab.port, timeout=10.0, minorversion=1)
    c.connect()
    c.establish()
    return c


def write_file(lab, path: str, data: bytes) -> None:
    c = client(lab)
    try:
        f = c.grace_aware(lambda: c.open(path, create=True, write=True), deadline=time.monotonic() + 20)
        assert c.write(f, 0, data) == len(data)
        c.close_file(f)
    finally:
        c.close()


def read_file(lab, path: str) -> bytes:
    c = client(lab)
    try:
        return c.read(c.lookup(path), 0, 1 << 16)
    finally:
        c.close()


@pytest.fixture
def vol(started_volume):
    return started_volume


def registry_bytes(vol: Path) -> bytes:
    return (vol / ".ganesha-ha" / "registry.json").read_bytes()


# ---- MEM ---------------------------------------------------------------------------------------

@needs_module("MEM", "NULL")
def test_mem_export_through_the_cli(ganesha, vol):
    """`export add VOL /scratch --fsal 'MEM(...)'`: a live MEM export a client writes and reads.
    The module block (Inode_Size) travels in the AddExport file: without it MEM keeps no data
    and a read returns filler; MEM's Async_* change in place (the data stays), a module
    option change is made in place (it waits for Ganesha's restart), a change of the stack
    re-adds the export (MEM's data goes with it) and says so."""
    out = ganesha.cli("export", "add", str(vol), "/scratch", "--fsal", "MEM(Inode_Size=65536)",
                      "--client", "127.0.0.1(rw,no_root_squash)", "--json", check=True)
    added = json.loads(out.stdout)
    assert added["live"] is True and added["remote"] is True and added["directory"] == "/scratch"
    assert added["pseudo"] == "/scratch" and added["fsal"] == "MEM"
    assert added["ganesha"] == {"fsal": {"name": "MEM", "options": [["Inode_Size", "65536"]]}}
    eid = added["export_id"]
    assert ganesha.show_exports()[eid] == "/scratch"
    write_file(ganesha, "/scratch/m.txt", b"kept in MEM\n")
    assert read_file(ganesha, "/scratch/m.txt") == b"kept in MEM\n"

    shown = json.loads(ganesha.cli("export", "show", str(vol), "/scratch", "--json", check=True).stdout)
    assert shown["ganesha"] == added["ganesha"] and shown["live"] is True
    listing = ganesha.cli("export", "list", str(vol), check=True).stdout
    assert "MEM:/scratch" in listing and " ganesha/MEM " in listing   # DIRECTORY, SERVER with the FSAL

    # Async_* is re-read by MEM's update_export: UpdateExport in place, the file survives
    upd = ganesha.cli("export", "update", str(vol), "/scratch", "--fsal",
                      "MEM(Inode_Size=65536,Async_Type=fixed,Async_Delay=5)", "--json", check=True)
    assert "withdrawn" not in json.loads(upd.stdout)["note"]
    assert read_file(ganesha, "/scratch/m.txt") == b"kept in MEM\n"
    assert "Updated FSAL_MEM aync parameters type=FIXED, delay=5" in ganesha.daemon.log_path.read_text()

    # a module option: the new Inode_Size waits for Ganesha's next load of MEM whatever is done
    # now, so the export is updated in place and its files stay
    upd = ganesha.cli("export", "update", str(vol), "/scratch", "--fsal", "MEM(Inode_Size=1024)", check=True)
    assert "withdrawn" not in upd.stdout
    assert "Inode_Size take effect only when ganesha.nfsd next loads" in upd.stderr
    assert read_file(ganesha, "/scratch/m.txt") == b"kept in MEM\n"

    # a change of the stack is withdrawn and added again (MEM's tree is dropped with the export)
    upd = ganesha.cli("export", "update", str(vol), "/scratch", "--fsal", "NULL(MEM(Inode_Size=1024))", check=True)
    assert "withdrawn and added again" in upd.stdout and "short outage" in upd.stdout
    assert ganesha.show_exports()[eid] == "/scratch"
    c = client(ganesha)
    try:
        with pytest.raises(Exception):
            c.lookup("/scratch/m.txt")
    finally:
        c.close()

    ganesha.cli("export", "remove", str(vol), "/scratch", check=True)
    assert eid not in ganesha.show_exports()


# ---- NULL over VFS -------------------------------------------------------------------------------

@needs_module("NULL", "VFS")
def test_null_over_vfs_through_the_cli(ganesha, vol):
    """The stacking FSAL passes through: what a client writes lands in the VFS directory."""
    out = ganesha.cli("export", "add", str(vol), "data", "--pseudo", "/data", "--fsal", "NULL(VFS)",
                      "--client", "127.0.0.1(rw,no_root_squash)", "--json", check=True)
    added = json.loads(out.stdout)
    assert added["ganesha"] == {"fsal": {"name": "NULL", "stacked": {"name": "VFS"}}} and not added["remote"]
    assert ganesha.show_exports()[added["export_id"]] == str(vol / "data")
    assert read_file(ganesha, "/data/f.txt") == b"hello from the volume\n"
    write_file(ganesha, "/data/through-null.txt", b"via NULL\n")
    assert (vol / "data" / "through-null.txt").read_bytes() == b"via NULL\n"
    # a fsid_type change cannot be made in place (vfs_update_export refuses it while answering
    # "1 exports updated"): withdrawn and added again, and the data is still there
    upd = ganesha.cli("export", "update", str(vol), "data", "--fsal", "NULL(VFS(fsid_type=uuid))", check=True)
    assert "withdrawn and added again" in upd.stdout
    assert read_file(ganesha, "/data/through-null.txt") == b"via NULL\n"


# ---- PROXY_V4 ------------------------------------------------------------------------------------

class Backend(GaneshaDaemon):
    """A second ganesha.nfsd serving one VFS directory: PROXY_V4's back-end. Its lease is 30 s:
    with Ganesha's 5 s the proxy's session renewer is always mid-call (it renews every lease - 5
    s) and a RemoveExport on the proxy waits its hard-coded 60 s (see backends/ganesha.py)."""

    def write_config(self) -> Path:
        path = super().write_config()
        text = path.read_text()
        assert "Lease_Lifetime = 5;" in text
        path.write_text(text.replace("Lease_Lifetime = 5;", "Lease_Lifetime = 30;"))
        return path


@pytest.fixture
def backend(tmp_path, ganesha):
    data = tmp_path / "backend-data"
    data.mkdir()
    (data / "served.txt").write_text("served by the back-end\n")
    port = free_port()
    block = (f'EXPORT {{ Export_Id = 77; Path = "{data}"; Pseudo = "/back"; Access_Type = None; '
             "Squash = No_Root_Squash; Protocols = 4; FSAL { Name = VFS; } "
             "CLIENT { Clients = 127.0.0.1; Access_Type = RW; } }\n")
    from ganesha_ha.lab.ganesha_daemon import PrivateBus

    bus = PrivateBus(tmp_path / "backend-bus").start()
    daemon = Backend(tmp_path / "backend", bus, port=port, extra_config=block)
    try:
        daemon.start()
        yield port, data
    finally:
        daemon.stop()
        bus.stop()


@needs_module("PROXY_V4")
def test_proxy_v4_through_the_cli(ganesha, vol, backend):
    """A client reads through the proxy what the back-end serves and writes land there; the
    export's path is the back-end's; the RemoveExport that used to block Ganesha's D-Bus
    thread for 60 s ends within this lab's 5 s D-Bus timeout (RPC_Client_Timeout = 2)."""
    port, data = backend
    out = ganesha.cli("export", "add", str(vol), "/back", "--pseudo", "/proxied", "--client",
                      "127.0.0.1(rw,no_root_squash)", "--fsal", f"PROXY_V4(Srv_Addr=127.0.0.1,NFS_Port={port})",
                      "--json", check=True)
    added = json.loads(out.stdout)
    assert added["ganesha"]["fsal"]["options"] == [["Srv_Addr", "127.0.0.1"], ["NFS_Port", str(port)]]
    conf = next((ganesha.workdir / "run" / "ganesha").glob(f"*/export-{added['export_id']}.conf")).read_text()
    assert "RPC_Client_Timeout = 2;" in conf
    assert read_file(ganesha, "/proxied/served.txt") == b"served by the back-end\n"
    write_file(ganesha, "/proxied/via-proxy.txt", b"written through the proxy\n")
    assert (data / "via-proxy.txt").read_bytes() == b"written through the proxy\n"
    t = time.monotonic()
    ganesha.cli("export", "remove", str(vol), "/back", check=True)
    assert added["export_id"] not in ganesha.show_exports()
    assert time.monotonic() - t < 5 + 2 + 10, "RemoveExport waited for more than RPC_Client_Timeout"


@needs_module("PROXY_V4", "VFS")
def test_a_proxy_v4_back_end_that_does_not_answer_is_refused_before_ganesha_hangs_on_it(ganesha, vol):
    """Measured on 4.3: AddExport of a PROXY_V4 export whose back-end refuses the connection
    never returns (proxyv4_rpc_recv retries "Cannot connect to server" forever while the D-Bus
    thread waits for the back-end's root handle), so every D-Bus call of that Ganesha, for every
    volume on the node, times out from then on. ganesha-ha tries the back-end first: that export
    is refused, naming it, and Ganesha keeps answering (a start serves the volume's others)."""
    (vol / "data").mkdir(exist_ok=True)
    closed = free_port()   # nothing listens there
    t = time.monotonic()
    proc = ganesha.cli("export", "add", str(vol), "/back", "--pseudo", "/proxied", "--client", "127.0.0.1(rw)",
                       "--fsal", f"PROXY_V4(Srv_Addr=127.0.0.1,NFS_Port={closed})")
    assert proc.returncode == 7, proc.stderr
    assert f"PROXY_V4 back-end 127.0.0.1:{closed} does not answer" in proc.stderr, proc.stderr
    assert time.monotonic() - t < 5
    assert set(ganesha.show_exports()) == {0}, "Ganesha answers, and nothing was added"
    ganesha.cli("export", "add", str(vol), "/back", "--pseudo", "/proxied", "--client", "127.0.0.1(rw)",
                "--fsal", f"PROXY_V4(Srv_Addr=127.0.0.1,NFS_Port={closed})", "--record-only", check=True)
    ganesha.cli("export", "add", str(vol), "data", "--client", "127.0.0.1", check=True)
    ganesha.cli("volume", "stop", str(vol), check=True)
    proc = ganesha.cli("volume", "start", str(vol))
    assert proc.returncode == 7 and "does not answer" in proc.stderr, proc.stderr
    assert sorted(ganesha.show_exports().values()) == ["/", str(vol / "data")]


# ---- through the agent -------------------------------------------------------------------------

def run_agent(action: str, params: dict[str, str], **extra: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "OCF_ROOT": "/usr/lib/ocf", "OCF_RESOURCE_INSTANCE": "gha_fsal"}
    env.update({f"OCF_RESKEY_{k}": v for k, v in {**params, **extra}.items()})
    return subprocess.run([AGENT, action], env=env, capture_output=True, text=True, timeout=120)


@needs_module("MEM", "NULL", "VFS", "PROXY_V4")
def test_mem_null_and_proxy_exports_through_the_agent(ganesha, tmpfs_volume, backend):
    """Recorded while the volume is not active, the agent's start makes all three live, each
    serves a real client, the monitor is clean and the stop withdraws them all."""
    port, data = backend
    vol = tmpfs_volume
    (vol / "data").mkdir()
    ganesha.cli("volume", "init", str(vol), "--server", "ganesha", "--id-range", "3100-3199", check=True)
    for args in (["/scratch", "--fsal", "MEM(Inode_Size=4096)"],
                 ["data", "--pseudo", "/data", "--fsal", "NULL(VFS)"],
                 ["/back", "--pseudo", "/proxied", "--fsal", f"PROXY_V4(Srv_Addr=127.0.0.1,NFS_Port={port})"]):
        ganesha.cli("export", "add", str(vol), *args, "--client", "127.0.0.1(rw,no_root_squash)", check=True)
    params = {"server": "ganesha", "volume": str(vol), "config": str(ganesha.config)}
    assert run_agent("validate-all", params).returncode == 0
    start = run_agent("start", params)
    assert start.returncode == 0, start.stderr
    assert {3100: "/scratch", 3101: str(vol / "data"), 3102: "/back"}.items() <= ganesha.show_exports().items()
    write_file(ganesha, "/scratch/a", b"mem\n")
    write_file(ganesha, "/data/b", b"null\n")
    write_file(ganesha, "/proxied/c", b"proxy\n")
    assert (read_file(ganesha, "/scratch/a"), (vol / "data" / "b").read_bytes(), (data / "c").read_bytes()) == (
        b"mem\n", b"null\n", b"proxy\n")
    assert run_agent("monitor", params, CRM_meta_interval="10000").returncode == 0
    stop = run_agent("stop", params, CRM_meta_timeout="20000")
    assert stop.returncode == 0, stop.stderr
    assert not {3100, 3101, 3102} & set(ganesha.show_exports())
    assert run_agent("monitor", params).returncode == 7


# ---- an FSAL this node does not have ------------------------------------------------------------

@needs_module("VFS", "MEM")
def test_an_fsal_missing_on_this_node(ganesha, vol, tmp_path):
    """Ganesha's plugin directory without libfsalmem.so: the CLI refuses a live MEM export
    naming the package, warns and records it with --record-only; validate-all warns, and the
    agent's start of a volume with nothing else to serve answers OCF_ERR_INSTALLED (5) naming
    FSAL and package (what it answers with other exports beside it: test_agent_answers.py).
    XFS has no module in Debian 12 at all."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "libfsalvfs.so").symlink_to(PLUGINS / "libfsalvfs.so")
    (plugins / "libfsalnull.so").symlink_to(PLUGINS / "libfsalnull.so")
    ganesha.config.write_text(ganesha.config.read_text().replace("[ganesha]\n", f"[ganesha]\nplugins_dir = {plugins}\n"))
    before = registry_bytes(vol)
    live = ganesha.cli("export", "add", str(vol), "/scratch", "--fsal", "MEM", "--client", "127.0.0.1")
    assert live.returncode == 6, live.stderr
    assert "FSAL MEM" in live.stderr and "nfs-ganesha-mem" in live.stderr and live.stderr.count("\n") == 1
    assert registry_bytes(vol) == before and set(ganesha.show_exports()) <= {0}
    rec = ganesha.cli("export", "add", str(vol), "/scratch", "--fsal", "MEM", "--client", "127.0.0.1",
                      "--record-only", check=True)
    assert "WARNING" in rec.stderr and "nfs-ganesha-mem" in rec.stderr and "recorded only" in rec.stdout
    # the stacked layer counts too
    nul = ganesha.cli("export", "add", str(vol), "/s2", "--fsal", "NULL(MEM)", "--client", "127.0.0.1")
    assert nul.returncode == 6 and "nfs-ganesha-mem" in nul.stderr
    params = {"server": "ganesha", "volume": str(vol), "config": str(ganesha.config)}
    # validate-all: the module a start needs here is missing, which is a lack of this node, not
    # a configuration error (6 would stop the volume on every node, and pcs runs validate-all on
    # one node): 0, with one warning naming the module and the export (tryout finding C)
    val = run_agent("validate-all", params)
    assert val.returncode == 0, val.stderr
    warned = [line for line in val.stderr.splitlines() if "WARNING" in line and "FSAL" in line]
    # no other node published its FSALs (no cluster here): a start would leave it out
    assert len(warned) == 1 and "FSAL MEM is missing here and no other node published its FSALs (Debian package " \
        "nfs-ganesha-mem)" in warned[0] and "needed by /scratch (Export_Id 3000)" in warned[0] \
        and "leaves these out" in warned[0], val.stderr
    # the volume's only export: nothing of it can be served here, nor anywhere (5, the module named)
    res = run_agent("start", params)
    assert res.returncode == 5, res.stderr
    [reason] = [line for line in res.stderr.splitlines() if line.startswith("ocf-exit-reason:")]
    assert "nfs-ganesha-mem" in reason and reason.count("/scratch") == 1, reason   # the export named once
    assert 3000 not in ganesha.show_exports(), "nothing of the volume went live"
    # no package at all
    (vol / "x").mkdir()
    xfs = ganesha.cli("export", "add", str(vol), "x", "--fsal", "XFS", "--client", "127.0.0.1")
    assert xfs.returncode == 6 and "Debian 12 has no package" in xfs.stderr


# ---- hostile values ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gluster_session(tmp_path_factory):
    """One Ganesha and volume for the hostile-value property test (GLUSTER's module is loaded,
    its create_export logs the volume name it was given, then fails: no GlusterFS here)."""
    from conftest import ganesha_volume_session

    if not (PLUGINS / "libfsalgluster.so").exists():
        pytest.skip("nfs-ganesha-gluster is not installed")
    with ganesha_volume_session(tmp_path_factory, "hostile-fsal", (5000, 25999)) as session:
        yield session


# text a config language chokes on, minus what the model refuses anyway (control characters,
# backslashes): most examples reach the daemon; nasty_text now and then brings refused ones
config_hostile = st.text(alphabet=st.sampled_from(list('"\'{}[]();,#=% @*?/.$`|&<>!~-_:')) |
                         st.characters(blacklist_categories=("Cc", "Cs", "Cn", "Zl", "Zp"), blacklist_characters="\\"),
                         min_size=1, max_size=40)
hostile_value = config_hostile | nasty_text


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(volume=hostile_value, label=config_hostile, volpath=config_hostile)
@example(volume='v"}; Bogus = 1; FSAL { #', label="x\\", volpath='/"')
@example(volume="a\nEXPORT { Export_Id = 1; }", label="", volpath="/")
def test_hostile_fsal_values_reach_ganesha_exactly(gluster_session, volume, label, volpath):
    """Whatever text the model accepts for an FSAL option (quotes, braces, ';', '#') reaches
    ganesha.nfsd as exactly that value: GLUSTER's create_export logs the volume and volpath it got,
    and fails only for want of a GlusterFS server, never with a parse error or an unknown
    parameter. What the model refuses (control characters, backslashes) never reaches it."""
    from ganesha_ha.errors import ApplyError, ValidationError
    from ganesha_ha.fsal import Fsal

    lab, vol, vm = gluster_session
    volpath = "/" + volpath.lstrip("/")
    try:
        fsal = Fsal("GLUSTER", (("volume", volume), ("hostname", "127.0.0.1"), ("sec_label_xattr", label),
                                ("volpath", volpath),
                                ("glfs_log", str(vol.parent / "gfapi.log"))))
    except ValidationError:
        text = volume + label + volpath
        assert not volume or "\\" in text or not all(c.isprintable() or c == " " for c in text)
        event("refused by the model")
        return
    event("reached ganesha.nfsd")
    log = lab.daemon.log_path
    before = log.read_text(errors="replace")
    with pytest.raises(ApplyError) as err:
        vm.add("/g", ["127.0.0.1"], pseudo="/g", fsal=fsal)
    message = str(err.value)
    assert "block validation" in message, message
    for word in ("Unknown parameter", "syntax", "Unexpected", "token scan", "out of range"):
        assert word not in message
    new = log.read_text(errors="replace")[len(before):]
    assert f"glusterfs_create_export :FSAL :EVENT :Volume {volume} exported at : '{volpath}'\n" in new
    assert set(lab.show_exports()) <= {0}


# ---- FSALs that cannot run here: Ganesha's parser on their rendered blocks ------------------

PARSED_ONLY = {
    # loading FSAL GPFS without a mounted GPFS makes ganesha.nfsd exit (gpfsext.c LogFatal)
    "GPFS": "GPFS(ignore_mode_change=true,Delegations=rw,PNFS_MDS=false,umask=022,fsal_trace=no)",
    # librgw without a Ceph cluster makes ganesha.nfsd exit
    "RGW": 'RGW(user_id=u,access_key_id=k,secret_access_key="s\\"};#",ceph_conf=/etc/ceph/ceph.conf,'
           'rgw_name=client.rgw,cluster=ceph,init_args="--debug-rgw=0",umask=7)',
    # no module in Debian 12
    "XFS": "XFS(link_support=false,maxread=1048576,only_one_user=true)",
}


@pytest.mark.parametrize("fsal", sorted(PARSED_ONLY))
def test_blocks_of_fsals_that_cannot_run_here_pass_ganeshas_parser(ganesha, tmp_path, fsal):
    """The rendered file (module block and EXPORT block) goes through ganesha.nfsd's own config
    parser: AddExport with an expression that selects no export parses the whole file and then
    finds nothing to add; a file Ganesha cannot parse says so instead (the control case)."""
    import dbus

    from ganesha_ha.backends.ganesha_conf import render_export
    from ganesha_ha.fsal import parse_spec
    from ganesha_ha.model import Export, GaneshaOptions, KnfsdOptions

    spec = parse_spec(PARSED_ONLY[fsal])
    exp = Export(path="/x" if spec.remote else "x", export_id=42, knfsd=KnfsdOptions("1"), pseudo="/x",
                 clients=("127.0.0.1",), ganesha=GaneshaOptions(spec))
    text = render_export(exp, "/srv/vol")
    good, bad = tmp_path / "good.conf", tmp_path / "bad.conf"
    good.write_text(text)
    bad.write_text(text.replace("EXPORT {", "EXPORT { {", 1))   # one stray brace

    def add(path: Path) -> str:
        with pytest.raises(dbus.DBusException) as err:
            ganesha.export_mgr("AddExport", str(path), "EXPORT(Export_Id=9999)")
        return err.value.get_dbus_message()

    assert "Error finding exports" in add(good)
    assert "Error while parsing" in add(bad)
    assert ganesha.daemon.proc.poll() is None


@pytest.mark.long
@needs_module("PROXY_V4")
def test_a_long_rpc_client_timeout_is_waited_for_within_the_agents_budget(ganesha, tmpfs_volume, backend):
    """With RPC_Client_Timeout = 15 set by hand (ganesha-ha writes 2 otherwise) a RemoveExport
    blocks Ganesha about 15 s: the agent's stop waits for it when its timeout allows (60 s),
    and when it does not (10 s: a budget of 8 s) the stop ends in time with the reason instead
    of being killed by Pacemaker mid-call."""
    port, _ = backend
    vol = tmpfs_volume
    ganesha.cli("volume", "init", str(vol), "--server", "ganesha", "--id-range", "3200-3299", check=True)
    ganesha.cli("export", "add", str(vol), "/back", "--pseudo", "/proxied", "--client", "127.0.0.1",
                "--fsal", f"PROXY_V4(Srv_Addr=127.0.0.1,NFS_Port={port},RPC_Client_Timeout=15)", check=True)
    params = {"server": "ganesha", "volume": str(vol), "config": str(ganesha.config)}
    for timeout_ms, ok in (("10000", False), ("60000", True)):
        assert run_agent("start", params).returncode == 0
        assert read_file(ganesha, "/proxied/served.txt") == b"served by the back-end\n"
        t = time.monotonic()
        stop = run_agent("stop", params, CRM_meta_timeout=timeout_ms)
        took = time.monotonic() - t
        if ok:
            assert stop.returncode == 0 and 10 < took < 48, (took, stop.stderr)
            assert 3200 not in ganesha.show_exports()
        else:
            assert stop.returncode == 1 and took < 10, (took, stop.stderr)
            assert "RPC_Client_Timeout" in stop.stderr and "did not answer D-Bus RemoveExport" in stop.stderr
            # the removal completes in Ganesha meanwhile
            assert wait_gone(ganesha, 3200)


def wait_gone(lab, export_id: int, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if export_id not in lab.show_exports():
                return True
        except Exception:
            pass   # Ganesha's D-Bus thread is still blocked
        time.sleep(0.5)
    return False
