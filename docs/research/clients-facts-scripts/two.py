"""Q2/Q5 driver, run inside a private mount+net+uts namespace. Throwaway."""
import os, sys, time, subprocess, shutil, json, signal
sys.path.insert(0, '/tmp/gha-cf/py')
import v41
ROOT = '/tmp/gha-cf/two'
BUS = f'unix:path={ROOT}/bus/bus.sock'
os.environ['DBUS_SYSTEM_BUS_ADDRESS'] = BUS
import dbus

def conf(name, ip, prefix, lease=None, grace=None, extra_core="", extra_v4=""):
    rec = f'{ROOT}/rec{name}'
    os.makedirs(rec, exist_ok=True)
    s = "NFS_CORE_PARAM {\n  Bind_Addr = %s;\n  NFS_Port = 2049;\n  Protocols = 4;\n  Enable_NLM = false;\n  Enable_RQUOTA = false;\n  Enable_UDP = false;\n" % ip
    if prefix: s += f"  Dbus_Name_Prefix = {prefix};\n"
    s += extra_core + "}\nNFSV4 {\n  RecoveryBackend = fs;\n  RecoveryRoot = \"%s\";\n" % rec
    if lease: s += f"  Lease_Lifetime = {lease};\n"
    if grace: s += f"  Grace_Period = {grace};\n"
    s += extra_v4 + "}\n"
    s += 'EXPORT { Export_Id = 1; Path = "%s/export"; Pseudo = "/export"; Protocols = 4; Access_Type = RW; Squash = No_Root_Squash; FSAL { Name = VFS; } }\n' % ROOT
    p = f'{ROOT}/{name}.conf'; open(p, 'w').write(s); return p

def busname(prefix): return f'{prefix}.org.ganesha.nfsd' if prefix else 'org.ganesha.nfsd'

def has_owner(name):
    try:
        c = dbus.bus.BusConnection(BUS); r = bool(c.name_has_owner(name)); c.close(); return r
    except dbus.DBusException: return False

def admin(prefix, method, *args):
    c = dbus.bus.BusConnection(BUS)
    try:
        o = c.get_object(busname(prefix), '/org/ganesha/nfsd/admin', introspect=False)
        return o.get_dbus_method(method, 'org.ganesha.nfsd.admin')(*args, timeout=10)
    finally: c.close()

def start(name, ip, prefix, **kw):
    cf = conf(name, ip, prefix, **kw)
    t0 = time.monotonic()
    p = subprocess.Popen(['ganesha.nfsd', '-F', '-f', cf, '-L', f'{ROOT}/{name}.log', '-p', f'{ROOT}/{name}.pid', '-N', 'NIV_EVENT'],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t_bus = t_serve = None
    while time.monotonic() - t0 < 20 and p.poll() is None:
        if t_bus is None and has_owner(busname(prefix)): t_bus = time.monotonic() - t0
        if t_serve is None:
            try:
                c = v41.C41(ip, 'probe-' + name); c.exchange_id(); c.close(); t_serve = time.monotonic() - t0
            except Exception: pass
        if t_bus is not None and t_serve is not None: break
        time.sleep(0.02)
    return p, t_bus, t_serve

def rss_kb(pid):
    for l in open(f'/proc/{pid}/status'):
        if l.startswith('VmRSS'): return int(l.split()[1])

def tree(d):
    out = []
    for r, ds, fs in os.walk(d):
        for x in ds + fs: out.append(os.path.relpath(os.path.join(r, x), d))
    return sorted(out)

def in_grace(prefix): return bool(admin(prefix, 'get_grace')[0])

def wait_out_of_grace(prefix, limit):
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        if not in_grace(prefix): return time.monotonic() - t0
        time.sleep(0.1)
    return None
