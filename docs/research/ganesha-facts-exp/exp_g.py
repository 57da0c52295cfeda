import sys, json, os
sys.path.insert(0, "/tmp/gha-facts")
from glab import Lab, py, run

def mem_export(eid, fsal_extra=""):
    return f"""EXPORT {{
  Export_Id = {eid}; Path = /mem{eid}; Pseudo = /mem{eid};
  Access_Type = RW; Squash = No_Root_Squash; Protocols = 4; Transports = TCP; SecType = sys;
  FSAL {{ Name = MEM; {fsal_extra} }}
}}
"""
def rw(lab, pseudo):
    rc, o, e = run(["nfs-cp", "/tmp/gha-facts/hello.txt", lab.url(f"{pseudo}/f.txt")])
    rc2, o2, e2 = run(["nfs-cat", lab.url(f"{pseudo}/f.txt")])
    return f"cp rc={rc} {(o+e).strip()[:120]!r}; cat rc={rc2} -> {o2!r} {e2.strip()[:120]!r}"

def case(name, main_extra, files):
    with Lab(f"exp_g_{name}", extra=main_extra) as lab:
        print(f"== {name}: main config extra: {main_extra.strip()!r}")
        for eid, text in files:
            r = lab.add(text, eid)
            print(f" AddExport {eid} file:\n   " + text.strip().replace("\n", "\n   "))
            print(f"  reply: {r}")
            if r[0] == "OK":
                print("  I/O:", rw(lab, f"/mem{eid}"))
        log = [l for l in lab.log().splitlines() if "MEM" in l or "CONFIG" in l]
        print("  log:", "\n   ".join(log[-6:]))

which = sys.argv[1:] or ["G1","G2","G3","G4","G5","F1","F2","F3"]
if "G1" in which: case("G1_baseline", "", [(601, mem_export(601))])
if "G2" in which: case("G2_block_in_addexport_file", "", [(602, "MEM { Inode_Size = 65536; }\n" + mem_export(602))])
if "G3" in which: case("G3_block_in_main_config", "MEM { Inode_Size = 65536; }\n", [(603, mem_export(603))])
if "G4" in which: case("G4_two_blocks", "", [(604, "MEM { Inode_Size = 3; }\nMEM { Inode_Size = 65536; }\n" + mem_export(604))])
if "G5" in which: case("G5_second_file_after_load", "", [(605, "MEM { Inode_Size = 65536; }\n" + mem_export(605)), (606, "MEM { Inode_Size = 2; }\n" + mem_export(606))])
if "F1" in which: case("F1_bogus_in_fsal_block", "", [(611, mem_export(611, "Bogus_Key = 1;"))])
if "F2" in which: case("F2_bogus_in_module_block", "", [(612, "MEM { Inode_Size = 65536; Bogus_Key = 1; }\n" + mem_export(612))])
if "F3" in which: case("F3_bogus_in_main_module_block", "MEM { Bogus_Key = 1; }\n", [(613, mem_export(613))])
