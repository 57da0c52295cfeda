import sys, os, time, subprocess
sys.path.insert(0, '/tmp/gha-cf/py')
from two import *
for n in (1, 20, 100):
    for i in range(n): os.makedirs(f'{ROOT}/exp/e{i}', exist_ok=True)
    cf = conf('N', '127.0.0.2', 'gN')
    s = open(cf).read()
    s += ''.join('EXPORT { Export_Id = %d; Path = "%s/exp/e%d"; Pseudo = "/e%d"; Protocols = 4; Access_Type = RW; Squash = No_Root_Squash; FSAL { Name = VFS; } }\n' % (100 + i, ROOT, i, i) for i in range(n))
    open(cf, 'w').write(s)
    t0 = time.monotonic()
    p = subprocess.Popen(['ganesha.nfsd', '-F', '-f', cf, '-L', f'{ROOT}/N.log', '-p', f'{ROOT}/N.pid', '-N', 'NIV_EVENT'])
    tb = ts = None
    while time.monotonic() - t0 < 30:
        if tb is None and has_owner('gN.org.ganesha.nfsd'): tb = time.monotonic() - t0
        if tb is not None:
            try:
                c = dbus.bus.BusConnection(BUS); o = c.get_object('gN.org.ganesha.nfsd', '/org/ganesha/nfsd/ExportMgr', introspect=False)
                _, ex = o.get_dbus_method('ShowExports', 'org.ganesha.nfsd.exportmgr')(timeout=5); c.close()
                if len(ex) >= n + 1: ts = time.monotonic() - t0; break
            except Exception: pass
        time.sleep(0.01)
    time.sleep(2)
    print(f'exports={n} bus_name={tb:.3f}s all_exports_listed={ts:.3f}s RSS={rss_kb(p.pid)}kB threads={len(os.listdir(f"/proc/{p.pid}/task"))}')
    t = time.monotonic(); p.terminate(); p.wait(); print(f'   SIGTERM exit {time.monotonic()-t:.2f}s')
