import sys, json
sys.path.insert(0, "/tmp/gha-facts")
from glab import Lab, py, run

def block(eid, clients_blocks, path, export_access="None"):
    cb = "".join(f"  CLIENT {{ Clients = {c}; Access_Type = RW; }}\n" for c in clients_blocks)
    return f"""EXPORT {{
  Export_Id = {eid}; Path = {path}; Pseudo = /e{eid};
  Access_Type = {export_access}; Squash = No_Root_Squash; Protocols = 4; Transports = TCP; SecType = sys;
  FSAL {{ Name = VFS; }}
{cb}}}
"""
MIXED = [
  ["127.0.0.1, nosuchhost.invalid"],
  ["127.0.0.1, 'x'"],
  ["127.0.0.1, ::/0"],
  ["127.0.0.1, 10.0.0.0/0"],
  ["127.0.0.1", "'x'"],
  ["127.0.0.1", "::/0"],
  ["127.0.0.1", "nosuchhost.invalid"],
]
ACCESS = ["127.1.2.3/8", "0177.0.0.1", "::ffff:127.0.0.1", "::1", "127.0.0.*", "local*", "0.0.0.0", "*", "localhost", "127.0.0.2", "::/0", "@ng"]
with Lab("exp_a2") as lab:
    eid = 200
    for blocks in MIXED:
        d = lab.dir / f"d{eid}"; d.mkdir()
        r = lab.add(block(eid, blocks, d), eid)
        disp = lab.display(eid) if r[0] == "OK" else None
        print(json.dumps({"blocks": blocks, "reply": r, "clients": [c[0] for c in disp[4]] if disp else None}), flush=True)
        if r[0] == "OK": lab.remove(eid)
        eid += 1
    print("--- access from 127.0.0.1 (export Access_Type=None, CLIENT RW)")
    for spec in ACCESS:
        d = lab.dir / f"d{eid}"; d.mkdir()
        r = lab.add(block(eid, [spec], d), eid)
        disp = lab.display(eid) if r[0] == "OK" else None
        rc, o, e = run(["nfs-cp", "/tmp/gha-facts/hello.txt", lab.url(f"/e{eid}/w.txt")])
        print(json.dumps({"spec": spec, "reply": r[:2] if r[0]=="OK" else r, "clients": [c[0] for c in disp[4]] if disp else None,
                          "nfs-cp rc": rc, "out": (o+e).strip()[:200], "written": (d/"w.txt").exists()}), flush=True)
        if r[0] == "OK": lab.remove(eid)
        eid += 1
