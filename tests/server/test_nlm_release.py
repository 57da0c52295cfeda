"""Release on the old node (issue 16): what a planned move's stop leaves behind in Ganesha
when an NFSv3 client holds an NLM lock on the volume, and whether the admin grace event
`2:<ip>` ("release IP") is needed for the file system to unmount.

Real programs: ganesha.nfsd 4.3 with NLM, rpcbind and rpc.statd in a node namespace of
their own (nlm_server.py); the "volume" is a tmpfs mounted inside that node's mount
namespace and exported over D-Bus (AddExport), as the exports agent does; the lab's NFSv3
client and NLM client in the client namespace.

Measured (the decision in the README, "Release on the old node"):
- while the lock is held, Ganesha keeps the locked file open (an fd under the mount point)
  and the tmpfs cannot be unmounted (EBUSY);
- RemoveExport, which is all the exports agent's stop sends, releases the export's state:
  the fd is closed, the file system unmounts, statd's record of the client is deleted
  (SM_UNMON: Ganesha drops a host's monitor with its last lock), and no lock survives:
  with the export back, another host gets the lock at once.
So a planned move needs no `grace 2:<ip>`; it would also start grace for the node's other
volumes and drop every NLM lock the same clients hold through that IP on other exports.
The stop saves the volume's NSM records before it withdraws (the monitor's rule), so the
record SM_UNMON deletes has already travelled.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from nlm_server import NlmServer, skip_reason

from ganesha_ha import linux
from ganesha_ha.lab.ganesha_daemon import _ganesha_call
from ganesha_ha.lab.nfs.nlm4 import NLM4_GRANTED
from ganesha_ha.lab.nfs.v3client import Nfs3Client, NlmClient

pytestmark = [pytest.mark.root, pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")]

EXPORT_ID = 9


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = NlmServer(tmp_path_factory.mktemp("release")).start()
    try:
        srv.wait_out_of_grace()
        yield srv
    finally:
        srv.stop()


def ganesha_pid(server: NlmServer) -> int:
    assert server.ganesha is not None and server.ganesha.pid is not None
    root = server.ganesha.pid
    for pid in sorted({root} | linux.descendants(root)):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "ganesha.nfsd":
                return pid
        except OSError:
            continue
    raise AssertionError("no ganesha.nfsd process found")


def open_under(pid: int, top: Path) -> list[str]:
    """The files process `pid` has open under `top` (its fd links)."""
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target == str(top) or target.startswith(f"{top}/"):
            out.append(target)
    return out


def bus(server: NlmServer, method: str, *args):
    import dbus

    assert server.bus is not None
    return _ganesha_call(server.bus.address, "/org/ganesha/nfsd/ExportMgr", "org.ganesha.nfsd.exportmgr", method,
                         *args) if method != "RemoveExport" else _ganesha_call(
        server.bus.address, "/org/ganesha/nfsd/ExportMgr", "org.ganesha.nfsd.exportmgr", method, dbus.UInt16(*args))


def add_export(server: NlmServer, path: Path, conf: Path) -> None:
    conf.write_text(f'EXPORT {{ Export_Id = {EXPORT_ID}; Path = "{path}"; Pseudo = "/released"; '
                    "Access_Type = RW; Squash = No_Root_Squash; Protocols = 3, 4; FSAL { Name = VFS; } "
                    "CLIENT { Clients = *; Access_Type = RW; } }\n")
    bus(server, "AddExport", str(conf), f"EXPORT(Export_Id={EXPORT_ID})")


def in_node(server: NlmServer, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([*server.nsenter(), *argv], capture_output=True, text=True, timeout=30)


def test_removing_the_export_releases_locks_and_the_file_system_without_grace_2(server: NlmServer,
                                                                               tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    vol.mkdir()
    assert in_node(server, "mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "gha-release", str(vol)).returncode == 0
    mounted = True
    a, b = server.client_addrs
    try:
        add_export(server, vol, tmp_path / "export.conf")
        mnt = Nfs3Client(server.fip, source_addr=a)
        fh = server.client(lambda: mnt.create(mnt.mount(str(vol)), "locked"))
        one, two = NlmClient(source_addr=a), NlmClient(source_addr=b)
        lock1, lock2 = one.make_lock(fh, svid=1), two.make_lock(fh, svid=2)
        assert server.client(lambda: one.lock(server.fip, lock1)) == NLM4_GRANTED
        pid = ganesha_pid(server)
        held = open_under(pid, vol)
        busy = in_node(server, "umount", str(vol))
        print(f"lock held: Ganesha has {held} open; umount: rc {busy.returncode} {busy.stderr.strip()}")
        assert held and busy.returncode != 0 and "busy" in busy.stderr
        assert (server.var_lib_nfs / "sm" / a).exists()

        server.client(mnt.close)
        bus(server, "RemoveExport", EXPORT_ID)          # what the exports agent's stop sends
        after = open_under(pid, vol)
        print(f"after RemoveExport: open under the volume {after}; statd record "
              f"{(server.var_lib_nfs / 'sm' / a).exists()}")
        assert after == []
        assert not (server.var_lib_nfs / "sm" / a).exists(), "Ganesha SM_UNMONs a host with its last lock"
        # no lock survived: with the export back (a failback), another host locks at once
        add_export(server, vol, tmp_path / "export.conf")
        assert server.client(lambda: two.lock(server.fip, lock2)) == NLM4_GRANTED
        assert server.client(lambda: two.unlock(server.fip, lock2)) == NLM4_GRANTED
        bus(server, "RemoveExport", EXPORT_ID)
        assert not server.in_grace(), "nothing started a grace period"
        done = in_node(server, "umount", str(vol))
        assert done.returncode == 0, done.stderr
        mounted = False
    finally:
        if mounted:
            in_node(server, "umount", "-l", str(vol))
