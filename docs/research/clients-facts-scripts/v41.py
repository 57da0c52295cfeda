"""Throwaway NFSv4.1 experiment client (EXCHANGE_ID, CREATE_SESSION, SEQUENCE, RECLAIM_COMPLETE, OPEN). Not project code."""
import os, socket, struct, random, time, sys
sys.path.insert(0, '/tmp/gha-cf/py')
from rpc import u32, u64, opaque, string, U, auth_sys, call_msg, parse_reply

class C41:
    def __init__(self, host, owner, src=None, port=2049, verifier=b"verf0001"):
        self.host, self.owner, self.src, self.port, self.verifier = host, owner, src, port, verifier
        self.s = None
    def conn(self):
        s = socket.socket(); 
        if self.src: s.bind((self.src, 0))
        s.settimeout(15); s.connect((self.host, self.port)); self.s = s
    def close(self):
        if self.s: self.s.close(); self.s = None
    def compound(self, ops):
        if not self.s: self.conn()
        xid = random.getrandbits(32)
        args = string("") + u32(1) + u32(len(ops)) + b"".join(u32(n) + a for n, a in ops)
        m = call_msg(xid, 100003, 4, 1, args)
        self.s.sendall(u32(0x80000000 | len(m)) + m)
        data = b""
        while True:
            hdr = b""
            while len(hdr) < 4:
                c = self.s.recv(4 - len(hdr))
                if not c: raise ConnectionError("closed")
                hdr += c
            n = struct.unpack(">I", hdr)[0]; last = n & 0x80000000; n &= 0x7fffffff
            while n:
                c = self.s.recv(n)
                if not c: raise ConnectionError("closed")
                data += c; n -= len(c)
            if last: break
        u = parse_reply(data, xid)
        st = u.u32(); u.opaque(); cnt = u.u32()
        return st, u, cnt
    def exchange_id(self):
        a = self.verifier + opaque(self.owner.encode()) + u32(0) + u32(0) + u32(0)
        st, u, cnt = self.compound([(42, a)])
        op = u.u32(); s2 = u.u32()
        if s2: raise RuntimeError(f"EXCHANGE_ID {s2}")
        self.clientid = u.u64(); self.seqid = u.u32(); self.flags = u.u32(); u.u32()
        minor = u.u64(); major = u.opaque(); scope = u.opaque()
        self.server_owner = (minor, major); self.server_scope = scope
        return self.clientid, major, scope, self.flags
    def create_session(self):
        attrs = u32(0) + u32(1048576) + u32(1048576) + u32(8192) + u32(16) + u32(4) + u32(0)
        battrs = u32(0) + u32(4096) + u32(4096) + u32(0) + u32(2) + u32(1) + u32(0)
        a = u64(self.clientid) + u32(self.seqid) + u32(0) + attrs + battrs + u32(0x40000000) + u32(1) + u32(0)
        st, u, cnt = self.compound([(43, a)])
        u.u32(); s2 = u.u32()
        if s2: raise RuntimeError(f"CREATE_SESSION {s2}")
        self.sessionid = u.d[u.o:u.o+16]; self.slot_seq = 0
        return self.sessionid
    def seq_op(self):
        self.slot_seq += 1
        return (53, self.sessionid + u32(self.slot_seq) + u32(0) + u32(0) + u32(0))
    def call(self, ops):
        st, u, cnt = self.compound([self.seq_op()] + ops)
        return st, u, cnt
    def reclaim_complete(self):
        st, u, cnt = self.call([(58, u32(0))])
        return st
    def destroy_session(self):
        st, u, cnt = self.compound([(44, self.sessionid)]); return st
    def open(self, path, claim_prev=False, create=False, fh=None):
        owner = u64(self.clientid) + opaque(b"oo-" + self.owner.encode())
        ops = []
        if claim_prev:
            ops.append((22, opaque(fh)))
            claim = u32(1) + u32(0)  # CLAIM_PREVIOUS, delegate_type NONE
            how = u32(0)
        else:
            ops.append((24, b""))
            comps = [c for c in path.split("/") if c]
            for c in comps[:-1]: ops.append((15, string(c)))
            claim = u32(0) + string(comps[-1])
            how = (u32(1) + u32(0) + u32(2) + u32(0)) if create else u32(0)  # CREATE UNCHECKED, fattr empty bitmap len 0 attrs len0
            if create: how = u32(1) + u32(0) + u32(0) + opaque(b"")
        ops.append((18, u32(0) + u32(3) + u32(0) + owner + how + claim))
        ops.append((10, b""))
        st, u, cnt = self.call(ops)
        return st

def parse_open_getfh(u, cnt):
    """After SEQUENCE, [PUTROOTFH|PUTFH], LOOKUP*, OPEN, GETFH: return (status_of_open, fh)."""
    u.u32(); s = u.u32()  # SEQUENCE
    if s: return s, None
    u.d[u.o:u.o+16]; u.o += 16; [u.u32() for _ in range(5)]
    for _ in range(cnt - 1):
        op = u.u32(); s = u.u32()
        if s: return (op, s), None
        if op == 18:
            u.o += 16; u.u32(); u.u64(); u.u64(); u.u32(); n = u.u32(); [u.u32() for _ in range(n)]
            dt = u.u32()
            assert dt == 0, dt
        elif op == 10:
            return 0, u.opaque()
    return 0, None

def open_fh(c, path=None, create=False, claim_prev_fh=None):
    owner = u64(c.clientid) + opaque(b"oo-" + c.owner.encode())
    ops = []
    if claim_prev_fh is not None:
        ops.append((22, opaque(claim_prev_fh))); claim = u32(1) + u32(0); how = u32(0)
    else:
        ops.append((24, b""))
        comps = [x for x in path.split("/") if x]
        for x in comps[:-1]: ops.append((15, string(x)))
        claim = u32(0) + string(comps[-1])
        how = (u32(1) + u32(0) + u32(0) + opaque(b"")) if create else u32(0)
    ops.append((18, u32(0) + u32(3) + u32(0) + owner + how + claim))
    ops.append((10, b""))
    st, u, cnt = c.call(ops)
    return parse_open_getfh(u, cnt)
