import sys, time, subprocess; sys.path.insert(0,'/tmp/gha-cf/py'); import rpc
fh = bytes.fromhex(open('/tmp/gha-cf/nlm/f1.fh').read())
H='127.0.0.1'
def grace(ev):
    out = subprocess.run(['dbus-send','--system','--print-reply','--type=method_call','--dest=org.ganesha.nfsd','/org/ganesha/nfsd/admin','org.ganesha.nfsd.admin.grace',f'string:{ev}'],capture_output=True,text=True)
    return out.stdout.split('string')[-1].strip()
def in_grace():
    out = subprocess.run(['dbus-send','--system','--print-reply','--type=method_call','--dest=org.ganesha.nfsd','/org/ganesha/nfsd/admin','org.ganesha.nfsd.admin.get_grace'],capture_output=True,text=True)
    return 'true' in out.stdout.split('\n')[1]
t=time.time()
while in_grace(): time.sleep(0.5)
print(f'grace over after {time.time()-t:.1f}s wait')
print('c5 lock (normal):', rpc.nlm_lock(H, fh, 'gha-client5', 101, src='127.0.0.5'))
print('c6 lock (normal, conflict expected):', rpc.nlm_lock(H, fh, 'gha-client6', 201, src='127.0.0.6'))
print('event', sys.argv[1], grace(sys.argv[1]))
time.sleep(0.5)
print('c6 reclaim probe after event (GRANTED => c5 lock was dropped):', rpc.nlm_lock(H, fh, 'gha-client6', 201, reclaim=True, src='127.0.0.6'))
print('c6 unlock:', rpc.nlm_lock(H, fh, 'gha-client6', 201, src='127.0.0.6', unlock=True))
