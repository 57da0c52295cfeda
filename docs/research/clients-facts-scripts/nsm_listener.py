"""Experiment: answer PMAP GETPORT for SM_PROG on UDP 111 and print every SM_NOTIFY (UDP)."""
import socket, select, sys, struct, time
sys.path.insert(0, '/tmp/gha-cf/py'); import rpc
addr = sys.argv[1]; smport = 40001
pm = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); pm.bind((addr, 111))
sm = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); sm.bind((addr, smport))
def reply(xid, body=b""):
    return rpc.u32(xid) + rpc.u32(1) + rpc.u32(0) + rpc.u32(0) + rpc.u32(0) + rpc.u32(0) + body
end = time.time() + float(sys.argv[2])
while time.time() < end:
    r, _, _ = select.select([pm, sm], [], [], 0.5)
    for s in r:
        data, src = s.recvfrom(65536)
        u = rpc.U(data); xid = u.u32(); u.u32(); u.u32(); prog = u.u32(); vers = u.u32(); proc = u.u32()
        fl = u.u32(); u.opaque(); u.u32(); u.opaque()
        if s is pm:
            p, v, proto, _ = u.u32(), u.u32(), u.u32(), u.u32()
            print(f"{time.time():.3f} PMAP from {src} proc={proc} GETPORT prog={p} vers={v} proto={proto}", flush=True)
            s.sendto(reply(xid, rpc.u32(smport if p == 100024 else 0)), src)
        else:
            mon = u.opaque(); state = u.u32()
            print(f"{time.time():.3f} SM from {src} prog={prog} vers={vers} proc={proc} mon_name={mon!r} state={state}", flush=True)
            s.sendto(reply(xid), src)
