import subprocess, time, os, sys
ROOT='/tmp/gha-cf/rb'; BUS=f'unix:path={ROOT}/bus/bus.sock'; os.environ['DBUS_SYSTEM_BUS_ADDRESS']=BUS
bus = subprocess.Popen(['dbus-daemon','--nofork','--nopidfile',f'--config-file={ROOT}/bus/bus.conf']); time.sleep(0.5)
for be in ('fs_ng', 'rados_kv', 'rados_ng', 'rados_cluster'):
    os.makedirs(f'{ROOT}/rec-{be}/127.0.0.2/v4recov/::ffff:127.0.0.5-(3:abc)', exist_ok=True)
    open(f'{ROOT}/{be}.conf','w').write(f'NFS_CORE_PARAM {{ Protocols = 4; Enable_NLM = false; Enable_RQUOTA = false; Enable_UDP = false; }}\nNFSV4 {{ RecoveryBackend = {be}; RecoveryRoot = "{ROOT}/rec-{be}"; Grace_Period = 5; Lease_Lifetime = 5; }}\n')
    p = subprocess.Popen(['ganesha.nfsd','-F','-f',f'{ROOT}/{be}.conf','-L',f'{ROOT}/{be}.log','-p',f'{ROOT}/{be}.pid','-N','NIV_EVENT'])
    time.sleep(2)
    alive = p.poll() is None
    print(be, 'alive after 2s:', alive, 'rc', p.returncode)
    if alive:
        print('  grace 5:', subprocess.run(['dbus-send','--system','--print-reply','--type=method_call','--dest=org.ganesha.nfsd','/org/ganesha/nfsd/admin','org.ganesha.nfsd.admin.grace','string:5:127.0.0.2'],capture_output=True,text=True).stdout.split('string')[-1].strip())
        time.sleep(1)
        p.terminate(); p.wait(30)
    subprocess.run(['sh','-c',f'grep -h -i "recov\\|backend\\|takeover\\|FATAL\\|event 5\\|clid count" {ROOT}/{be}.log | cut -c60- | tail -5'])
    print('  tree:', sorted(os.path.relpath(os.path.join(r,x), f'{ROOT}/rec-{be}') for r,d,f in os.walk(f'{ROOT}/rec-{be}') for x in d+f))
bus.terminate(); bus.wait()
