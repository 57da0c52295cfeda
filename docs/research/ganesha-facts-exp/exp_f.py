import sys, json, os
sys.path.insert(0, "/tmp/gha-facts")
from glab import Lab, py, run

def exp(eid, path, pseudo, fsal):
    return f"""EXPORT {{
  Export_Id = {eid}; Path = {path}; Pseudo = {pseudo};
  Access_Type = RW; Squash = No_Root_Squash; Protocols = 4; Transports = TCP; SecType = sys;
  {fsal}
}}
"""
def rw(lab, pseudo, name="f.txt"):
    rc, o, e = run(["nfs-cp", "/tmp/gha-facts/hello.txt", lab.url(f"{pseudo}/{name}")])
    rc2, o2, e2 = run(["nfs-cat", lab.url(f"{pseudo}/{name}")])
    return f"cp rc={rc} {(o+e).strip()[:120]!r}; cat rc={rc2} -> {o2!r} {e2.strip()[:160]!r}"

with Lab("exp_f") as lab:
    d = lab.dir / "nullvfs"; d.mkdir()
    print("== NULL over VFS")
    t = exp(701, d, "/nullvfs", "FSAL { Name = NULL; FSAL { Name = VFS; } }")
    print(" add:", lab.add(t, 701)); print(" I/O:", rw(lab, "/nullvfs"), " on disk:", (d/"f.txt").read_bytes() if (d/"f.txt").exists() else None)
    print(" display:", lab.display(701))
    print(" NULL without sub-FSAL:", lab.add(exp(702, d, "/nullnosub", "FSAL { Name = NULL; }"), 702))
    print(" FSAL name too long:", lab.add(exp(703, d, "/long", "FSAL { Name = ABCDEFGHIJK; }"), 703))
    print(" FSAL unknown:", lab.add(exp(704, d, "/unk", "FSAL { Name = NOPE; }"), 704))
    print(" FSAL block missing:", lab.add(exp(705, d, "/nofsal", ""), 705))
    print(" VFS fsid_type bogus:", lab.add(exp(706, d, "/badfsid", "FSAL { Name = VFS; fsid_type = Bogus; }"), 706))
    print("== VFS plain + UpdateExport of FSAL options")
    v = lab.dir / "vfs"; v.mkdir()
    print(" add VFS:", lab.add(exp(710, v, "/vfs", "FSAL { Name = VFS; }"), 710)); print(" I/O:", rw(lab, "/vfs"))
    print(" UpdateExport fsid_type=uuid:", lab.add(exp(710, v, "/vfs", "FSAL { Name = VFS; fsid_type = uuid; }"), 710, method="UpdateExport"))
    print(" UpdateExport FSAL -> NULL/VFS:", lab.add(exp(710, v, "/vfs", "FSAL { Name = NULL; FSAL { Name = VFS; } }"), 710, method="UpdateExport"))
    print(" UpdateExport same + Bogus_Key:", lab.add(exp(710, v, "/vfs", "FSAL { Name = VFS; Bogus_Key = 1; }"), 710, method="UpdateExport"))
    print(" UpdateExport Access_Type RO:", lab.add(exp(710, v, "/vfs", "FSAL { Name = VFS; }").replace("Access_Type = RW", "Access_Type = RO"), 710, method="UpdateExport"))
    print(" I/O after RO:", rw(lab, "/vfs", "g.txt"))
    print("== MEM UpdateExport Async_Type")
    print(" add MEM:", lab.add(exp(720, "/m720", "/m720", "FSAL { Name = MEM; }"), 720))
    print(" UpdateExport Async_Type=fixed, Async_Delay=5:", lab.add(exp(720, "/m720", "/m720", "FSAL { Name = MEM; Async_Type = fixed; Async_Delay = 5; }"), 720, method="UpdateExport"))
    print(" UpdateExport Async_Delay=5000 (out of range):", lab.add(exp(720, "/m720", "/m720", "FSAL { Name = MEM; Async_Delay = 5000; }"), 720, method="UpdateExport"))
    print(" ShowExports:", lab.show())
    print("--- log (FSAL/CONFIG/EXPORT CRIT lines)")
    print("\n".join(l.split(" : ",3)[-1] for l in lab.log().splitlines() if ":CRIT" in l or "Updated FSAL_MEM" in l))
