#!/bin/bash
# Throwaway experiment scripts for /work/notes/clients-facts.md (research only, not project code).
# They hard-code /tmp/gha-cf/... paths; copy them to /tmp/gha-cf/py and /tmp/gha-cf/holder.sh to rerun.
# runs inside: unshare --mount --net --uts --propagation private --fork
set -e
NAME=$1; ROOT=$2
hostname "$NAME"
ip link set lo up
mount -t tmpfs tmpfs /run
mkdir -p /run/rpcbind /run/dbus
mount -t tmpfs tmpfs /var/lib/nfs
mkdir -p /var/lib/nfs/sm /var/lib/nfs/sm.bak /var/lib/nfs/ganesha
chown statd:nogroup /var/lib/nfs/sm /var/lib/nfs/sm.bak
touch /var/lib/nfs/state; chown statd /var/lib/nfs/state
echo $$ > "$ROOT/holder.pid"
touch "$ROOT/ready"
exec sleep 3600
