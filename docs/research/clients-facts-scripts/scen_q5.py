import sys, os, time, shutil, subprocess
sys.path.insert(0, '/tmp/gha-cf/py')
from two import *
import two
def ss():
    return subprocess.run(['ss', '-Hltn', 'sport = :2049'], capture_output=True, text=True).stdout.strip().replace('\n', ' | ')
# 1. same prefix twice on one bus
pa, ab, asv = start('A', '127.0.0.2', 'gA')
pc, cb, csv = start('C', '127.0.0.3', 'gA')
time.sleep(1)
print('same prefix: A alive', pa.poll() is None, 'C alive', pc.poll() is None, 'C got bus name within 20s?', cb, 'C serving', csv)
subprocess.run(['sh', '-c', f'grep -h "bus\\|dbus\\|DBUS" {ROOT}/C.log | cut -c60- | tail -3'])
pa.terminate(); pa.wait(); time.sleep(1)
print('after A exits, gA name owner exists?', has_owner('gA.org.ganesha.nfsd'), '(C queued -> takes over name?)')
try: print('  get_grace via gA now answered by C?', admin('gA', 'get_grace'))
except Exception as e: print('  call failed', e)
pc.terminate(); pc.wait()
# 2. invalid prefix
pd, db, dsv = start('D', '127.0.0.2', 'g-A')
time.sleep(0.5)
print('invalid prefix g-A: default name taken?', has_owner('org.ganesha.nfsd'), 'g-A name?', db)
subprocess.run(['sh', '-c', f'grep -h -i "prefix" {ROOT}/D.log | cut -c60- | tail -2'])
pd.terminate(); pd.wait()
# 3. same pid file
cf = conf('E', '127.0.0.2', 'gE')
p1 = subprocess.Popen(['ganesha.nfsd', '-F', '-f', cf, '-L', f'{ROOT}/E.log', '-p', f'{ROOT}/shared.pid', '-N', 'NIV_EVENT'])
time.sleep(1)
cf2 = conf('F', '127.0.0.3', 'gF')
p2 = subprocess.Popen(['ganesha.nfsd', '-F', '-f', cf2, '-L', f'{ROOT}/F.log', '-p', f'{ROOT}/shared.pid', '-N', 'NIV_EVENT'])
rc = p2.wait(10); print('second instance with the same pid file exit code', rc)
subprocess.run(['sh', '-c', f'grep -h "FATAL" {ROOT}/F.log | cut -c60- | tail -1'])
p1.terminate(); p1.wait()
# 4. RecoveryRoot unusable
open(f'{ROOT}/afile', 'w').write('x')
cf = conf('G', '127.0.0.2', 'gG').replace('x', 'x')
s = open(cf).read().replace(f'{ROOT}/recG', f'{ROOT}/afile/rec'); open(cf, 'w').write(s)
pg = subprocess.Popen(['ganesha.nfsd', '-F', '-f', cf, '-L', f'{ROOT}/G.log', '-p', f'{ROOT}/G.pid', '-N', 'NIV_EVENT'])
time.sleep(2)
print('RecoveryRoot under a regular file: alive', pg.poll() is None, 'bus', has_owner('gG.org.ganesha.nfsd'))
try:
    c = v41.C41('127.0.0.2', 'x', src='127.0.0.5'); c.exchange_id(); c.create_session(); print('  session ok; RECLAIM_COMPLETE', c.reclaim_complete()); c.close()
except Exception as e: print('  client failed', e)
subprocess.run(['sh', '-c', f'grep -h -i "recov" {ROOT}/G.log | cut -c60- | tail -4'])
pg.terminate(); pg.wait()
