"""Throwaway experiment client: ONC RPC over TCP/UDP, MOUNT3, NLM4, PMAP. Not project code."""
import os, socket, struct, random, time

def pad(b): return b + b"\0" * ((4 - len(b) % 4) % 4)
def u32(v): return struct.pack(">I", v & 0xffffffff)
def u64(v): return struct.pack(">Q", v)
def opaque(b): return u32(len(b)) + pad(b)
def string(s): return opaque(s.encode() if isinstance(s, str) else s)

class U:
    def __init__(s, d): s.d, s.o = d, 0
    def u32(s):
        v = struct.unpack_from(">I", s.d, s.o)[0]; s.o += 4; return v
    def u64(s):
        v = struct.unpack_from(">Q", s.d, s.o)[0]; s.o += 8; return v
    def opaque(s):
        n = s.u32(); v = s.d[s.o:s.o+n]; s.o += (n + 3) & ~3; return v

def auth_sys(machine="gha-cf-client", uid=0, gid=0):
    body = u32(int(time.time())) + string(machine) + u32(uid) + u32(gid) + u32(0)
    return u32(1) + opaque(body)

def call_msg(xid, prog, vers, proc, args, cred=None):
    cred = cred or auth_sys()
    return u32(xid) + u32(0) + u32(2) + u32(prog) + u32(vers) + u32(proc) + cred + u32(0) + u32(0) + args

def parse_reply(data, xid):
    u = U(data)
    rx = u.u32(); assert rx == xid, (rx, xid)
    assert u.u32() == 1
    stat = u.u32()
    if stat != 0: raise RuntimeError(f"MSG_DENIED {stat}")
    u.u32(); u.opaque()  # verf
    acc = u.u32()
    if acc != 0: raise RuntimeError(f"accept_stat {acc}")
    return u

def tcp_call(host, port, prog, vers, proc, args, src=None, resv=True):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if src or resv:
        for p in range(1023, 600, -1) if resv else [0]:
            try:
                s.bind((src or "0.0.0.0", p)); break
            except OSError: continue
    s.settimeout(10); s.connect((host, port))
    xid = random.getrandbits(32)
    m = call_msg(xid, prog, vers, proc, args)
    s.sendall(u32(0x80000000 | len(m)) + m)
    data = b""
    while True:
        hdr = b""
        while len(hdr) < 4: hdr += s.recv(4 - len(hdr))
        n = struct.unpack(">I", hdr)[0]; last = n & 0x80000000; n &= 0x7fffffff
        while n: c = s.recv(n); data += c; n -= len(c)
        if last: break
    s.close()
    return parse_reply(data, xid)

def getport(host, prog, vers, proto=6, src=None):
    u = tcp_call(host, 111, 100000, 2, 3, u32(prog) + u32(vers) + u32(proto) + u32(0), src=src, resv=False)
    return u.u32()

def mnt(host, path, src=None):
    port = getport(host, 100005, 3, src=src)
    u = tcp_call(host, port, 100005, 3, 1, string(path), src=src)
    st = u.u32()
    if st: raise RuntimeError(f"MNT3 {st}")
    return u.opaque()

NLM_STATS = {0: "GRANTED", 1: "DENIED", 2: "DENIED_NOLOCKS", 3: "BLOCKED", 4: "DENIED_GRACE_PERIOD", 5: "DEADLCK", 6: "ROFS", 7: "STALE_FH", 8: "FBIG", 9: "FAILED"}

def nlm_lock(host, fh, caller, svid, reclaim=False, excl=True, state=3, src=None, off=0, ln=0, unlock=False, oh=None):
    port = getport(host, 100021, 4, src=src)
    oh = oh or f"{svid}@{caller}".encode()
    lock = string(caller) + opaque(fh) + opaque(oh) + u32(svid) + u64(off) + u64(ln)
    cookie = opaque(os.urandom(4))
    if unlock:
        args = cookie + lock; proc = 4
    else:
        args = cookie + u32(0) + u32(1 if excl else 0) + lock + u32(1 if reclaim else 0) + u32(state)
        proc = 2
    u = tcp_call(host, port, 100021, 4, proc, args, src=src)
    u.opaque()
    return NLM_STATS.get(u.u32())
