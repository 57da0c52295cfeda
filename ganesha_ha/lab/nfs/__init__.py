"""Small pure-Python NFS clients for the failover lab: NFSv4.0 and 4.1 (RFC 7530/8881), and
NFSv3 with NLM locks and the client's side of NSM (RFC 1813, X/Open XNFS).

By layer, bottom up: xdr.py (RFC 4506 encoding), rpc.py (ONC RPC over TCP, record
marking, AUTH_SYS; call/reply codecs for a UDP service), then per protocol a pure module
of encodings and status codes and a client:
* nfs4.py (the COMPOUND and its operations), nfs41.py (the NFSv4.1 session operations and
  the slot rule); client.py (`Nfs4Client`, minor version 0 or 1: client id, session,
  opens, seqids, reads and writes, reclaim, grace handling);
* nfs3.py (MOUNT3, NFSv3, PMAP GETPORT), nlm4.py (NLM4 and SM_NOTIFY); v3client.py
  (`Nfs3Client`: MOUNT then NFSv3 through saved handles; `NlmClient`: locks it keeps and
  reclaims), nsm.py (`NsmListener`: answers sm-notify on UDP 111 and the SM port, and
  calls back so the locks are reclaimed).

Why not libnfs: the lab must show that a client keeps working across a server failover
*with the file handle it already holds*. libnfs's `nfs-cat`/`nfs-ls` are one-shot: every
run mounts afresh (PUTROOTFH + LOOKUP), so they can never replay an old handle; libnfs's
own OPEN does not retry NFS4ERR_GRACE, so right after a failover it just fails; and a
one-shot tool reports "it failed" without saying whether the server was unreachable
(an outage, which should heal) or answered NFS4ERR_STALE (the export's identity changed,
which is exactly the bug the lab exists to catch). This client keeps the raw handle bytes,
replays them with PUTFH against whichever server now owns the address, and keeps those
cases apart: `NfsError` carries the NFS4ERR_* code, connection trouble is an `OSError`,
and `Nfs4Client.grace_aware` retries only what a real client would retry. For NFSv4.1 no
library lets the lab choose when RECLAIM_COMPLETE is sent or see the server scope and
owner bytes (nfs-rs 0.8.7, measured, sends no reclaim at all after a restart).

For NFSv3 no PyPI library speaks NLM or receives SM_NOTIFY over UDP (see v3client.py and
nsm.py).

Scope is deliberately small: one TCP connection (RPC record marking), AUTH_SYS, one
session slot, no callbacks (so no delegations, no blocking NLM locks), no NFSv4 locking,
not thread-safe (the NSM listener runs one thread of its own). XDR is written by hand
with `struct`.
"""
