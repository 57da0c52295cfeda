"""Take-over early lift: A (127.0.0.2) -> B (127.0.0.3). argv: lease grace extra_dead_record(0/1) c_version(41|40)"""
import sys, os, time, shutil, subprocess
sys.path.insert(0, '/tmp/gha-cf/py')
from two import *
lease = int(sys.argv[1]) or None; grace = int(sys.argv[2]) or None; dead = sys.argv[3] == '1'
for d in ('recA', 'recB'): shutil.rmtree(f'{ROOT}/{d}', ignore_errors=True)
pa, ab, asv = start('A', '127.0.0.2', 'gA', lease=lease, grace=grace)
pb, bb, bsv = start('B', '127.0.0.3', 'gB', lease=lease, grace=grace)
print(f'A pid {pa.pid} bus {ab} serve {asv}; B pid {pb.pid} bus {bb} serve {bsv}')
time.sleep(1)
print('RSS kB A', rss_kb(pa.pid), 'B', rss_kb(pb.pid))
print('A in grace at start?', in_grace('gA'), 'B?', in_grace('gB'))
c = v41.C41('127.0.0.2', 'gha-cf-c1', src='127.0.0.5')
cid, major, scope, fl = c.exchange_id()
print('A EXCHANGE_ID server_owner major', major, 'scope', scope)
c.create_session()
print('RECLAIM_COMPLETE on A', c.reclaim_complete())
st, fh = v41.open_fh(c, '/export/file1', create=True)
print('OPEN create on A', st, fh.hex() if fh else None)
mode = sys.argv[4] if len(sys.argv) > 4 else ''
if dead:
    d = v41.C41('127.0.0.2', 'gha-cf-dead', src='127.0.0.6'); d.exchange_id(); d.create_session(); d.reclaim_complete(); d.close()
if mode == '40':
    sys.path.insert(0, '/work/main')
    from ganesha_ha.lab.nfsclient import Nfs4Client
    c40 = Nfs4Client('127.0.0.2', client_name='gha-cf-c40', source_addr='127.0.0.7'); c40.connect(); c40.establish()
    f40 = c40.open('/export/file40', create=True, write=True); c40.close()
    print('v4.0 client opened file40 on A')
print('A records:', tree(f'{ROOT}/recA'))
pa.kill(); pa.wait(); c.close()
src = f'{ROOT}/recA/v4recov/node0'
dst = f'{ROOT}/recB/127.0.0.2/v4recov'
os.makedirs(dst, exist_ok=True)
for x in os.listdir(src): shutil.copytree(os.path.join(src, x), os.path.join(dst, x))
print('B takeover dir:', tree(f'{ROOT}/recB/127.0.0.2'))
t0 = time.monotonic()
print('grace 5 on B:', admin('gB', 'grace', '5:127.0.0.2'))
c2 = v41.C41('127.0.0.3', 'gha-cf-c1', src='127.0.0.5')
cid2, major2, scope2, fl2 = c2.exchange_id()
print('B EXCHANGE_ID server_owner major', major2, 'scope', scope2)
c2.create_session()
st, _ = v41.open_fh(c2, '/export/file2', create=True)
print(f'{time.monotonic()-t0:.2f}s CLAIM_NULL open before RECLAIM_COMPLETE:', st)
st, fh2 = v41.open_fh(c2, claim_prev_fh=fh)
print(f'{time.monotonic()-t0:.2f}s CLAIM_PREVIOUS open:', st)
print(f'{time.monotonic()-t0:.2f}s RECLAIM_COMPLETE on B:', c2.reclaim_complete())
if mode == '40':
    c40.host = '127.0.0.3'; c40.connect(); c40.establish()
    try:
        c40.reclaim(f40); print(f'{time.monotonic()-t0:.2f}s v4.0 CLAIM_PREVIOUS reclaim on B ok')
    except Exception as e: print('v4.0 reclaim failed', e)
t1 = time.monotonic()
st, _ = v41.open_fh(c2, '/export/file2', create=True)
print(f'{time.monotonic()-t0:.2f}s CLAIM_NULL open right after RECLAIM_COMPLETE:', st)
w = wait_out_of_grace('gB', 200)
print(f'grace lifted {w:.2f}s after RECLAIM_COMPLETE, {time.monotonic()-t0:.2f}s after event' if w is not None else 'not lifted in 200s')
st, _ = v41.open_fh(c2, '/export/file3', create=True)
print('CLAIM_NULL open after lift:', st)
c2.close()
pb.terminate(); t = time.monotonic(); pb.wait(); print(f'B SIGTERM exit took {time.monotonic()-t:.2f}s')
subprocess.run(['sh', '-c', f'grep -h "grace\\|GRACE\\|recovery\\|Recovery" {ROOT}/B.log | cut -c40- | tail -12'])
