import sys, os, time, subprocess, shutil
ROOT = '/tmp/gha-cf/rs'
conf = f'''NFS_CORE_PARAM {{ Protocols = 4; Enable_NLM = false; Enable_RQUOTA = false; Enable_UDP = false; }}
NFSV4 {{ RecoveryBackend = fs; RecoveryRoot = "{ROOT}/rec"; Grace_Period = 15; Lease_Lifetime = 10; }}
EXPORT {{ Export_Id = 1; Path = "{ROOT}/export"; Pseudo = "/export"; Protocols = 4; Access_Type = RW; Squash = No_Root_Squash; FSAL {{ Name = VFS; }} }}
'''
open(f'{ROOT}/g.conf', 'w').write(conf)
def start():
    p = subprocess.Popen(['ganesha.nfsd', '-F', '-f', f'{ROOT}/g.conf', '-L', f'{ROOT}/g.log', '-p', f'{ROOT}/g.pid', '-N', 'NIV_EVENT'])
    time.sleep(1); return p
p = start()
time.sleep(16)  # out of start grace
import nfs_rs
c = nfs_rs.Client.connect('nfs://127.0.0.1/export', versions=('4.1',), operation_timeout=60)
print('version', c.version, 'caps', c.capabilities)
f = c.open('/data', 'w+b'); f.write(b'before'); 
p.kill(); p.wait(); t0 = time.monotonic()
p = start()
try:
    f.write(b'-after'); f.flush() if hasattr(f, 'flush') else None
    print(f'write after restart ok at {time.monotonic()-t0:.1f}s')
except Exception as e: print('write after restart failed', type(e).__name__, e)
for ev in c.drain_recovery_events(): print('  event', ev)
print('health', c.health)
try: f.close()
except Exception as e: print('close', e)
print(open(f'{ROOT}/export/data','rb').read())
subprocess.run(['sh','-c',f'grep -h "check grace\\|NOT IN GRACE\\|IN GRACE" {ROOT}/g.log | cut -c60- | tail -4'])
c.close(); p.terminate(); p.wait()
