import sys, json, os
sys.path.insert(0, "/tmp/gha-facts")
from glab import Lab, py, run

OPT = {0x1:"ROOT_ID_SQUASH",0x2:"ROOT_SQUASH",0x4:"ALL_ANONYMOUS",0x8:"ANON_UID_SET",0x10:"ANON_GID_SET",0x20:"READ_ACCESS",0x40:"WRITE_ACCESS",
       0x80:"MD_READ_ACCESS",0x100:"MD_WRITE_ACCESS",0x200:"PRIVILEGED_PORT",0x400:"COMMIT",0x800:"DISABLE_ACL",0x1000:"AUTH_NONE",0x2000:"AUTH_UNIX",
       0x4000:"RPCSEC_GSS_NONE",0x8000:"RPCSEC_GSS_INTG",0x10000:"RPCSEC_GSS_PRIV",0x80000:"EXPIRE_SET",0x100000:"NFSV3",0x200000:"NFSV4",0x400000:"9P",
       0x1000000:"UDP",0x2000000:"TCP",0x4000000:"RDMA",0x10000000:"READ_DELEG",0x20000000:"WRITE_DELEG",0x40000000:"MANAGE_GIDS",0x80000000:"NO_READDIR_PLUS"}
def bits(v): return "|".join(n for b,n in OPT.items() if v & b) or "0"

def export(eid, path, clients):
    return f"""EXPORT {{
  Export_Id = {eid}; Path = {path}; Pseudo = /e{eid};
  Access_Type = None; Squash = No_Root_Squash; Protocols = 4; Transports = TCP; SecType = sys;
  FSAL {{ Name = VFS; }}
{clients}}}
"""
B = """  CLIENT { Clients = 127.0.0.1; Access_Type = RW; Squash = root_squash; Anonymous_Uid = 1234; Anonymous_Gid = 1235; }
  CLIENT { Clients = 10.0.0.0/8, 192.168.1.7; Access_Type = RO; Squash = No_Root_Squash; }
  CLIENT { Clients = *.example.com, @ng; Access_Type = MDONLY; Squash = all_squash; Protocols = 4; }
"""
C1 = """  CLIENT { Clients = 127.0.0.1; Access_Type = RO; }
  CLIENT { Clients = *; Access_Type = RW; }
"""
C2 = """  CLIENT { Clients = *; Access_Type = RW; }
  CLIENT { Clients = 127.0.0.1; Access_Type = RO; }
"""
C3 = """  CLIENT { Clients = 127.0.0.0/8; Access_Type = RW; Squash = No_Root_Squash; }
  CLIENT { Clients = 127.0.0.1; Access_Type = RW; Squash = All_Squash; Anonymous_Uid = 4321; }
"""
C4 = """  CLIENT { Clients = 127.0.0.1; Access_Type = RW; Squash = All_Squash; Anonymous_Uid = 4321; }
  CLIENT { Clients = 127.0.0.0/8; Access_Type = RW; Squash = No_Root_Squash; }
"""
with Lab("exp_bc") as lab:
    for eid, body in ((300, B), (301, C1), (302, C2), (303, C3), (304, C4)):
        d = lab.dir / f"d{eid}"; d.mkdir(); os.chmod(d, 0o777)
        r = lab.add(export(eid, d, body), eid)
        print(f"== export {eid}\n{body}reply: {r}")
        disp = lab.display(eid)
        print("DisplayExport:", json.dumps(disp))
        for c in disp[4]:
            print(f"  client {c[0]!r} proto={c[4]} anon_uid={c[5]} anon_gid={c[6]} expire={c[7]} options=0x{c[8]:x} set=0x{c[9]:x} effective(options&set)={bits(c[8]&c[9])}")
        rc, o, e = run(["nfs-cp", "/tmp/gha-facts/hello.txt", lab.url(f"/e{eid}/w.txt")])
        st = os.stat(d/"w.txt") if (d/"w.txt").exists() else None
        print(f"  nfs-cp as uid 0 -> rc={rc} {(o+e).strip()[:160]!r} file={'uid=%d gid=%d' % (st.st_uid, st.st_gid) if st else None}")
        rc, o, e = run(["nfs-ls", lab.url(f"/e{eid}")])
        print(f"  nfs-ls rc={rc} {(o+e).strip()[:200]!r}")
    print("ShowExports:", py(lab.mgr("ShowExports")))
    try:
        print("ShowClients:", py(lab.call("/org/ganesha/nfsd/ClientMgr", "org.ganesha.nfsd.clientmgr", "ShowClients")))
    except Exception as ex:
        print("ShowClients error", ex)
    conn_intro = lab.call("/org/ganesha/nfsd/ExportMgr", "org.freedesktop.DBus.Introspectable", "Introspect")
    print(conn_intro)
