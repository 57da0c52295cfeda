import sys, time, subprocess; sys.path.insert(0,'/tmp/gha-cf/py'); import rpc
fh = bytes.fromhex(open('/tmp/gha-cf/nlm/f1.fh').read())
H='127.0.0.1'
print('c6 conflicting lock before event:', rpc.nlm_lock(H, fh, 'gha-client6', 201, src='127.0.0.6'))
def grace(ev):
    out = subprocess.run(['dbus-send','--system','--print-reply','--type=method_call','--dest=org.ganesha.nfsd','/org/ganesha/nfsd/admin','org.ganesha.nfsd.admin.grace',f'string:{ev}'],capture_output=True,text=True)
    print('grace', ev, out.stdout.strip().replace('\n',' '), out.stderr.strip())
grace(sys.argv[1])
time.sleep(0.5)
print('c6 non-reclaim lock after event:', rpc.nlm_lock(H, fh, 'gha-client6', 201, src='127.0.0.6'))
print('c5 reclaim after event:', rpc.nlm_lock(H, fh, 'gha-client5', 101, reclaim=True, src='127.0.0.5'))
print('c5 non-reclaim after event:', rpc.nlm_lock(H, fh, 'gha-client5', 101, src='127.0.0.5'))
