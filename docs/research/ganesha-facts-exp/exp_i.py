"""Run inside: unshare -m --propagation private. Collect VFS wire handles per fsid_type."""
import sys, os, subprocess, struct, json
sys.path.insert(0, "/tmp/gha-facts"); sys.path.insert(0, "/work/main")
from glab import Lab, run
from ganesha_ha.lab.nfsclient import Nfs4Client

TYPES = [None, "None", "One64", "Major64", "Two64", "uuid", "Two32", "Dev", "Device"] if not os.environ.get("FSID_DEVICE") else [None, "uuid", "Two32"]
EXTRA_CORE = "    fsid_device = true;\n" if os.environ.get("FSID_DEVICE") else ""
NAMES = {0: "NO_TYPE", 1: "ONE_UINT64", 2: "MAJOR_64", 3: "TWO_UINT64", 4: "TWO_UINT32", 5: "DEVICE"}
SIZES = {0: 0, 1: 8, 2: 8, 3: 16, 4: 8, 5: 8}

def decode(h):
    fs_len = h[4]; op = h[5:5+fs_len]
    t = op[0] & 0x1f  # ~(0xC0|0x20)
    fsid = op[1:1+SIZES[t]]
    if SIZES[t] == 8 and t in (4, 5):
        v = f"major={struct.unpack('<I', fsid[:4])[0]:#x} minor={struct.unpack('<I', fsid[4:])[0]:#x}"
    elif SIZES[t] == 8:
        v = f"u64={struct.unpack('<Q', fsid)[0]:#x}"
    elif SIZES[t] == 16:
        v = f"major={struct.unpack('<Q', fsid[:8])[0]:#x} minor={struct.unpack('<Q', fsid[8:])[0]:#x}"
    else:
        v = ""
    return NAMES[t], v, op.hex()

def collect(label, path, fname):
    out = {}
    for t in TYPES:
        fs = f"FSAL {{ Name = VFS; fsid_type = {t}; }}" if t else "FSAL { Name = VFS; }"
        with Lab(f"exp_i_{label}_{t}", grace_wait=False, extra_core=EXTRA_CORE) as lab:
            r = lab.add(f"""EXPORT {{ Export_Id = 77; Path = {path}; Pseudo = /e; Access_Type = RW;
  Squash = No_Root_Squash; Protocols = 4; Transports = TCP; SecType = sys; {fs} }}\n""", 77)
            if r[0] != "OK":
                print(label, t, r); continue
            with Nfs4Client("127.0.0.1", lab.port) as c:
                c.connect()
                h = c.lookup(f"/e/{fname}")
            out[str(t)] = decode(h)
            print(f"  {label:10s} fsid_type={str(t):8s} -> {out[str(t)][0]:11s} {out[str(t)][1]}", flush=True)
    return out

def sh(*a):
    return subprocess.run(a, check=True, capture_output=True, text=True).stdout.strip()

res = {}
if not os.environ.get('FSID_DEVICE'):
    # 1. root ext4 (blkid cannot read /dev/vda here)
    d = "/tmp/gha-facts/rootfs"; os.makedirs(d, exist_ok=True); open(d + "/f", "w").write("x")
    st = os.stat(d); print("root ext4: st_dev=%d:%d statfs f_fsid=%s" % (os.major(st.st_dev), os.minor(st.st_dev), sh("stat", "-f", "-c", "%i", d)))
    res["root"] = collect("rootext4", d, "f")
    # 2. tmpfs
    t = "/tmp/gha-facts/tmpfs"; os.makedirs(t, exist_ok=True)
    sh("mount", "-t", "tmpfs", "gha-facts-tmpfs", t); open(t + "/f", "w").write("x")
    st = os.stat(t); print("tmpfs: st_dev=%d:%d statfs f_fsid=%s" % (os.major(st.st_dev), os.minor(st.st_dev), sh("stat", "-f", "-c", "%i", t)))
    res["tmpfs"] = collect("tmpfs", t, "f")
    sh("umount", t)
# 3. ext4 image on loop device A, then on loop device B (different minor): what changes?
img = "/tmp/gha-facts/ext4.img"; dummy = "/tmp/gha-facts/dummy.img"
sh("truncate", "-s", "64M", img); sh("truncate", "-s", "1M", dummy)
sh("mkfs.ext4", "-q", "-F", "-U", "11111111-2222-3333-4444-555555555555", img)
m = "/tmp/gha-facts/mnt"; os.makedirs(m, exist_ok=True)
loops = []
try:
    la = sh("losetup", "-f", "--show", img); loops.append(la)
    sh("mount", la, m); open(m + "/f", "w").write("x")
    st = os.stat(m); print(f"ext4 img on {la}: st_dev={os.major(st.st_dev)}:{os.minor(st.st_dev)} f_fsid={sh('stat','-f','-c','%i',m)} blkid={sh('blkid', la)}")
    res["loopA"] = collect("loopA", m, "f")
    sh("umount", m); sh("losetup", "-d", la); loops.remove(la)
    ld = sh("losetup", "-f", "--show", dummy); loops.append(ld)
    lb = sh("losetup", "-f", "--show", img); loops.append(lb)
    sh("mount", lb, m)
    st = os.stat(m); print(f"ext4 img on {lb}: st_dev={os.major(st.st_dev)}:{os.minor(st.st_dev)} f_fsid={sh('stat','-f','-c','%i',m)}")
    res["loopB"] = collect("loopB", m, "f")
    sh("umount", m)
finally:
    subprocess.run(["umount", m], capture_output=True)
    for l in loops:
        subprocess.run(["losetup", "-d", l])
    for f in (img, dummy):
        os.unlink(f)
print("== same file, same ext4 image, different loop device: identical wire handle?")
for k in res.get("loopA", {}):
    a, b = res["loopA"][k], res["loopB"].get(k)
    print(f"  fsid_type={k:8s} A={a[0]:11s} same_handle={a[2] == (b[2] if b else None)}  A={a[2]} B={b[2] if b else None}")
