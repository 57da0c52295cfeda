import sys, time, subprocess, os; sys.path.insert(0,'/tmp/gha-cf/py'); import rpc
fh = bytes.fromhex(open('/tmp/gha-cf/nlm/f1.fh').read())
def dbus(m, *a):
    return subprocess.run(['dbus-send','--system','--print-reply','--type=method_call','--dest=org.ganesha.nfsd','/org/ganesha/nfsd/admin','org.ganesha.nfsd.admin.'+m,*a],capture_output=True,text=True).stdout
while 'true' in dbus('get_grace').split('\n')[1]: time.sleep(0.5)
print('c5 lock:', rpc.nlm_lock('127.0.0.1', fh, 'gha-client5', 101, src='127.0.0.5'))
print('sm:', sorted(os.listdir('/var/lib/nfs/sm')))
