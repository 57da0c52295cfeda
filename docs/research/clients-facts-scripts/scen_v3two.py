import sys, os, time, subprocess
sys.path.insert(0, '/tmp/gha-cf/py')
from two import *
import rpc
def confv3(name, ip, prefix):
    cf = conf(name, ip, prefix)
    s = open(cf).read().replace('Protocols = 4;\n  Enable_NLM = false;', 'Protocols = 3, 4;\n  Enable_NLM = true;').replace('Protocols = 4; Access', 'Protocols = 3, 4; Access')
    open(cf, 'w').write(s); return cf
ps = []
for name, ip, pre in (('A', '127.0.0.2', 'gA'), ('B', '127.0.0.3', 'gB')):
    cf = confv3(name, ip, pre)
    ps.append(subprocess.Popen(['ganesha.nfsd', '-F', '-f', cf, '-L', f'{ROOT}/{name}3.log', '-p', f'{ROOT}/{name}.pid', '-N', 'NIV_EVENT']))
    time.sleep(2)
print('alive', [p.poll() is None for p in ps])
print(subprocess.run(['rpcinfo', '-p'], capture_output=True, text=True).stdout)
print(subprocess.run(['ss', '-Hltnp'], capture_output=True, text=True).stdout)
for name in 'AB':
    subprocess.run(['sh', '-c', f'grep -h -i "regist\\|rpcb\\|Cannot\\|statd\\|UNMON" {ROOT}/{name}3.log | cut -c60- | tail -4'])
for ip in ('127.0.0.2', '127.0.0.3'):
    try:
        print(ip, 'MNT via rpcbind ->', rpc.mnt(ip, f'{ROOT}/export', src='127.0.0.5').hex()[:16])
    except Exception as e: print(ip, 'MNT failed', e)
for p in ps: p.terminate()
for p in ps: p.wait(30)
