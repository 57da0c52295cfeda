"""A small pure-Python NFSv4.0 client (RFC 7530/7531) for the failover lab.

By layer, bottom up: xdr.py (RFC 4506 encoding), rpc.py (ONC RPC over TCP, record
marking, AUTH_SYS), nfs4.py (the COMPOUND and its operations, status codes; pure),
client.py (`Nfs4Client`: client id, opens, seqids, reads and writes, grace handling).

Why not libnfs: the lab must show that a client keeps working across a server failover
*with the file handle it already holds*. libnfs's `nfs-cat`/`nfs-ls` are one-shot: every
run mounts afresh (PUTROOTFH + LOOKUP), so they can never replay an old handle; libnfs's
own OPEN does not retry NFS4ERR_GRACE, so right after a failover it just fails; and a
one-shot tool reports "it failed" without saying whether the server was unreachable
(an outage, which should heal) or answered NFS4ERR_STALE (the export's identity changed,
which is exactly the bug the lab exists to catch). This client keeps the raw handle bytes,
replays them with PUTFH against whichever server now owns the address, and keeps those
cases apart: `NfsError` carries the NFS4ERR_* code, connection trouble is an `OSError`,
and `Nfs4Client.grace_aware` retries only what a real client would retry.

Scope is deliberately small: one TCP connection (RPC record marking), AUTH_SYS, NFSv4.0
only (minor version 0, SETCLIENTID, open-owner seqids), no callbacks (so no delegations),
no locking, not thread-safe. XDR is written by hand with `struct`. NFSv4.1 (sessions) would
add its operations to nfs4.py and a client beside client.py.
"""

