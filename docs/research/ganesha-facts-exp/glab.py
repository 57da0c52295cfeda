"""Experiment helper: private dbus-daemon + ganesha.nfsd with a hand-written config."""
import os, sys, subprocess, socket, time, shutil, signal
from pathlib import Path
sys.path.insert(0, "/work/main")
from ganesha_ha.lab.ganesha_daemon import PrivateBus
from ganesha_ha.lab.procs import wait_until, stop_popen
import dbus

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]

def core(port, rec, extra_core="", lease=5):
    return f"""NFS_CORE_PARAM {{
    NFS_Port = {port};
    Bind_Addr = 127.0.0.1;
    Protocols = 4;
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Enable_UDP = false;
{extra_core}}}
NFSV4 {{
    RecoveryBackend = fs;
    RecoveryRoot = "{rec}";
    Grace_Period = 5;
    Lease_Lifetime = {lease};
}}
"""

class Lab:
    def __init__(self, name, extra_core="", extra="", grace_wait=True, lease=5):
        self.dir = Path("/tmp/gha-facts/runs") / name
        if self.dir.exists(): shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True)
        self.port = free_port()
        (self.dir / "rec").mkdir()
        self.conf = self.dir / "ganesha.conf"
        self.conf.write_text(core(self.port, self.dir / "rec", extra_core, lease) + extra)
        self.bus = PrivateBus(self.dir / "bus")
        self.proc = None
        self.grace_wait = grace_wait
    def __enter__(self):
        self.bus.start()
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.bus.address)
        self.proc = subprocess.Popen(["/usr/bin/ganesha.nfsd", "-F", "-f", str(self.conf), "-L", str(self.dir/"ganesha.log"),
            "-p", str(self.dir/"ganesha.pid"), "-N", "NIV_EVENT"], env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(f"# ganesha pid {self.proc.pid} port {self.port} dir {self.dir}", flush=True)
        ok = wait_until(lambda: self.proc.poll() is not None or self.bus.name_has_owner(), 15)
        if not ok or self.proc.poll() is not None:
            print(self.log()); self.stop(); raise RuntimeError("ganesha did not start")
        if self.grace_wait:
            wait_until(lambda: not self.in_grace(), 20, 0.3)
        return self
    def __exit__(self, *a):
        self.stop()
    def stop(self):
        if self.proc is not None:
            stop_popen(self.proc, timeout=10); self.proc = None
        self.bus.stop()
    def log(self):
        try: return (self.dir/"ganesha.log").read_text(errors="replace")
        except FileNotFoundError: return ""
    def call(self, path, iface, method, *args, timeout=10):
        conn = dbus.bus.BusConnection(self.bus.address)
        try:
            obj = conn.get_object("org.ganesha.nfsd", path, introspect=False)
            return obj.get_dbus_method(method, iface)(*args, timeout=timeout)
        finally:
            conn.close()
    def mgr(self, method, *args, timeout=10):
        return self.call("/org/ganesha/nfsd/ExportMgr", "org.ganesha.nfsd.exportmgr", method, *args, timeout=timeout)
    def in_grace(self):
        r = self.call("/org/ganesha/nfsd/admin", "org.ganesha.nfsd.admin", "get_grace")
        return bool(r[0]) if isinstance(r, (tuple, list)) else bool(r)
    def add(self, text, eid, fname=None, method="AddExport", timeout=10):
        f = self.dir / (fname or f"export-{eid}.conf")
        f.write_text(text)
        try:
            return ("OK", str(self.mgr(method, str(f), f"EXPORT(Export_Id={eid})", timeout=timeout)))
        except dbus.DBusException as e:
            return ("ERR", e.get_dbus_name(), e.get_dbus_message())
    def display(self, eid):
        try:
            r = self.mgr("DisplayExport", dbus.UInt16(eid))
            return py(r)
        except dbus.DBusException as e:
            return ("ERR", e.get_dbus_name(), e.get_dbus_message())
    def show(self):
        return {int(e[0]): str(e[1]) for e in self.mgr("ShowExports")[1]}
    def remove(self, eid, timeout=10):
        try:
            self.mgr("RemoveExport", dbus.UInt16(eid), timeout=timeout); return "OK"
        except dbus.DBusException as e:
            return ("ERR", e.get_dbus_name(), e.get_dbus_message())
    def url(self, path):
        return f"nfs://127.0.0.1{path}?version=4&nfsport={self.port}"

def py(v):
    if isinstance(v, (list, tuple, dbus.Array, dbus.Struct)):
        return [py(x) for x in v]
    if isinstance(v, dbus.String): return str(v)
    if isinstance(v, (dbus.Byte,)): return int(v)
    if isinstance(v, (dbus.UInt16, dbus.UInt32, dbus.Int32, dbus.UInt64, dbus.Int64)): return int(v)
    if isinstance(v, dbus.Boolean): return bool(v)
    return v

def run(argv, timeout=20, input=None):
    p = subprocess.run(argv, capture_output=True, timeout=timeout, input=input)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
