import sys, json, os, time, subprocess
sys.path.insert(0, "/tmp/gha-facts")
from glab import Lab, py, run
import dbus

variant = sys.argv[1]

def vfs_exp(eid, path, pseudo):
    return f"""EXPORT {{
  Export_Id = {eid}; Path = {path}; Pseudo = {pseudo};
  Access_Type = RW; Squash = No_Root_Squash; Protocols = 4; Transports = TCP; SecType = sys;
  FSAL {{ Name = VFS; }}
}}
"""
def proxy_exp(eid, port, remote_path, pseudo, clients=None):
    cl = f"  CLIENT {{ Clients = {clients}; Access_Type = RW; }}\n" if clients else ""
    access = "None" if clients is not None else "RW"
    return f"""EXPORT {{
  Export_Id = {eid}; Path = {remote_path}; Pseudo = {pseudo};
  Access_Type = {access}; Squash = No_Root_Squash; Protocols = 4; Transports = TCP; SecType = sys;
  FSAL {{ Name = PROXY_V4; Srv_Addr = 127.0.0.1; NFS_Port = {port}; {os.environ.get("PROXY_EXTRA", "")} }}
{cl}}}
"""
def stacks(pid, path):
    p = subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", "thread apply all bt"], capture_output=True, text=True, timeout=120)
    open(path, "w").write(p.stdout + p.stderr)

LEASE = int(os.environ.get("BACK_LEASE", "5")); RTO = float(os.environ.get("RM_TIMEOUT", "20"))
back = Lab("exp_h_back", lease=LEASE).__enter__()
try:
    bd = back.dir / "data"; bd.mkdir()
    print("backend add:", back.add(vfs_exp(801, bd, "/back"), 801))
    startup_extra = proxy_exp(901, back.port, "/back", "/prox") if variant == "startup" else ""
    with Lab(f"exp_h_proxy_{variant}", extra=startup_extra) as prox:
        if variant != "startup":
            print("proxy AddExport:", prox.add(proxy_exp(901, back.port, "/back", "/prox"), 901))
        print("ShowExports:", prox.show())
        if variant != "noio":
            rc, o, e = run(["nfs-cp", "/tmp/gha-facts/hello.txt", prox.url("/prox/p.txt")])
            print("write via proxy:", rc, (o+e).strip()[:200], "on backend disk:", (bd/"p.txt").exists())
            rc, o, e = run(["nfs-cat", prox.url("/prox/p.txt")]); print("read via proxy:", rc, repr(o), e.strip()[:100])
        if variant == "noclients":
            print("UpdateExport to no matching clients:", prox.add(proxy_exp(901, back.port, "/back", "/prox", clients="127.0.0.254"), 901, method="UpdateExport"))
        if variant == "backend_down":
            back.stop(); print("backend stopped")
        if os.environ.get("PRESTACK"):
            time.sleep(3); stacks(prox.proc.pid, str(prox.dir / "prestacks.txt")); print("prestacks saved")
        t0 = time.monotonic()
        r = prox.remove(901, timeout=RTO)
        dt = time.monotonic() - t0
        print(f"RemoveExport -> {r} after {dt:.1f}s")
        if r != "OK" and "NoReply" in str(r):
            stacks(prox.proc.pid, str(prox.dir / "stacks.txt"))
            print("stacks saved", prox.dir / "stacks.txt")
            try:
                print("ShowExports after:", prox.show())
            except Exception as ex:
                print("ShowExports after failed:", type(ex).__name__, str(ex)[:200])
        else:
            print("ShowExports after:", prox.show())
        print("proxy log CRIT/MAJ:", "\n".join(l.split(" : ",3)[-1] for l in prox.log().splitlines() if ":CRIT" in l or ":MAJ" in l or "PROXY" in l.upper())[-2500:])
        print("# stopping proxy pid", prox.proc.pid)
        t0 = time.monotonic()
finally:
    back.stop()
print("done")
