import subprocess, time, os
ROOT='/tmp/gha-cf/fb'
open(f'{ROOT}/g.conf','w').write(f'NFS_CORE_PARAM {{ Bind_Addr = 192.0.2.7; Protocols = 4; Enable_NLM = false; Enable_RQUOTA = false; Enable_UDP = false; }}\nNFSV4 {{ RecoveryRoot = "{ROOT}/rec"; Grace_Period = 5; Lease_Lifetime = 5; }}\n')
for sysctl in ('0', '1'):
    subprocess.run(['sysctl', '-q', '-w', f'net.ipv4.ip_nonlocal_bind={sysctl}'])
    p = subprocess.Popen(['ganesha.nfsd','-F','-f',f'{ROOT}/g.conf','-L',f'{ROOT}/g{sysctl}.log','-p',f'{ROOT}/g.pid','-N','NIV_EVENT'])
    time.sleep(2); alive = p.poll() is None
    print('ip_nonlocal_bind', sysctl, 'alive', alive, 'rc', p.returncode, subprocess.run(['ss','-Hltn'],capture_output=True,text=True).stdout.strip())
    subprocess.run(['sh','-c',f'grep -h "bind\\|FATAL" {ROOT}/g{sysctl}.log | cut -c60- | tail -2'])
    if alive:
        subprocess.run(['ip','addr','add','192.0.2.7/32','dev','lo'])
        import socket
        s = socket.create_connection(('192.0.2.7', 2049), timeout=3); print('  after adding the address: connect ok'); s.close()
        p.terminate(); p.wait(30)
