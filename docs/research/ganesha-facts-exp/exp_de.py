import sys, json, os
sys.path.insert(0, "/tmp/gha-facts")
from glab import Lab, py, run

def export(eid, path, pseudo, fsal="FSAL { Name = VFS; }"):
    return f"""EXPORT {{
  Export_Id = {eid}; Path = {path}; Pseudo = {pseudo};
  Access_Type = RW; Squash = No_Root_Squash; Protocols = 4; Transports = TCP; SecType = sys;
  {fsal}
}}
"""
def ls(lab, p):
    rc, o, e = run(["nfs-ls", lab.url(p)])
    return f"rc={rc} {' | '.join(l.split()[-1] for l in (o).strip().splitlines())} {e.strip()[:150]}"

if sys.argv[1] == "D":
  for mpp in ("false", "true"):
    with Lab(f"exp_d_{mpp}", extra_core=f"    mount_path_pseudo = {mpp};\n") as lab:
        d = lab.dir / "real"; d.mkdir()
        print(f"== mount_path_pseudo = {mpp}")
        print(" add:", lab.add(export(401, d, "/pseudo/x"), 401))
        print(" ShowExports (id,path):", lab.show())
        print(" DisplayExport:", lab.display(401))
        print(" ls /pseudo/x:", ls(lab, "/pseudo/x"))
        # export without Pseudo
        d2 = lab.dir / "real2"; d2.mkdir()
        print(" add without Pseudo:", lab.add(export(402, d2, "/x").replace("Pseudo = /x;", ""), 402))
        print(" ShowExports:", lab.show())
else:
  with Lab("exp_e") as lab:
    for n in ("A", "B", "C", "D"):
        (lab.dir / n).mkdir(); (lab.dir / n / f"marker{n}").write_text(n)
    (lab.dir / "A" / "sub").mkdir()  # a real dir 'sub' inside parent A
    (lab.dir / "A" / "sub" / "inA_sub").write_text("x")
    print("== case 1: parent /top (A, has dir sub) then child /top/sub (B)")
    print(" add parent:", lab.add(export(501, lab.dir/"A", "/top"), 501))
    print(" add child:", lab.add(export(502, lab.dir/"B", "/top/sub"), 502))
    print(" ls /top:", ls(lab, "/top")); print(" ls /top/sub:", ls(lab, "/top/sub"))
    print(" RemoveExport parent:", lab.remove(501))
    print(" ShowExports:", lab.show())
    print(" RemoveExport child:", lab.remove(502), " then parent:", lab.remove(501))
    print("== case 1b: parent /top2 (C, NO dir sub) then child /top2/sub (B)")
    print(" add parent:", lab.add(export(511, lab.dir/"C", "/top2"), 511))
    print(" add child:", lab.add(export(512, lab.dir/"B", "/top2/sub"), 512))
    print(" ls /top2:", ls(lab, "/top2")); print(" ls /top2/sub:", ls(lab, "/top2/sub"))
    print(" ShowExports:", lab.show())
    print(" RemoveExport parent:", lab.remove(511))
    print(" RemoveExport child:", lab.remove(512), " then parent:", lab.remove(511))
    print("== case 2: child /top3/sub (B) first, then parent /top3 (A, has dir sub)")
    print(" add child:", lab.add(export(522, lab.dir/"B", "/top3/sub"), 522))
    print(" ls /top3:", ls(lab, "/top3")); print(" ls /top3/sub:", ls(lab, "/top3/sub"))
    print(" add parent:", lab.add(export(521, lab.dir/"A", "/top3"), 521))
    print(" ShowExports:", lab.show())
    print(" ls /top3:", ls(lab, "/top3")); print(" ls /top3/sub:", ls(lab, "/top3/sub"))
    print(" RemoveExport parent:", lab.remove(521))
    print(" ls /top3/sub after parent removal:", ls(lab, "/top3/sub"))
    print(" RemoveExport child:", lab.remove(522))
    print("== case 3: child /top4/sub (B) first, then parent /top4 (D, NO dir sub)")
    print(" add child:", lab.add(export(532, lab.dir/"B", "/top4/sub"), 532))
    print(" add parent:", lab.add(export(531, lab.dir/"D", "/top4"), 531))
    print(" ls /top4:", ls(lab, "/top4")); print(" ls /top4/sub:", ls(lab, "/top4/sub"))
    print(" RemoveExport parent:", lab.remove(531))
    print(" ls /top4/sub after parent removal:", ls(lab, "/top4/sub"))
    print(" RemoveExport child:", lab.remove(532))
    print(" ShowExports:", lab.show())
    print("--- log tail"); print("\n".join(l for l in lab.log().splitlines() if "EXPORT" in l or "PSEUDO" in l or "junction" in l.lower())[-3000:])
