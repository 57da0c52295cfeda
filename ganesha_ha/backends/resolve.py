"""Host name lookups with a time budget, for read-back (one command or agent call).

Reading an export back means knowing what a client host name stands for on this node, since
both servers resolve names once, where they run: Ganesha at AddExport (src/support/exports.c
`add_client`: getaddrinfo with no hints), exportfs when it writes etab. A monitor must not
hang on a resolver that does not answer (a DNS server down is when failovers happen), and
libc's getaddrinfo cannot be given a deadline: each lookup runs in a daemon thread that is
abandoned when the call's budget is spent, as ganesha_bus.py does with a bus connection. Once
the budget is spent every further lookup of the call answers None at once ("not known now":
the caller does not judge that client), so a dead resolver costs one budget per call, not one
per name.
"""
from __future__ import annotations

import time

# glibc's flags when getaddrinfo gets no hints (AI_V4MAPPED | AI_ADDRCONFIG), as Ganesha calls it;
# socket and threading are imported by the first lookup (most client specs are addresses)
GANESHA_FLAGS = 0x0008 | 0x0020


class Resolver:
    """`resolver(name)` → the name's addresses in getaddrinfo's order (stream and datagram
    entries, a repeat of the previous address skipped, as Ganesha's add_client keeps them);
    () when the name does not resolve; None when the lookups of this call ran out of time."""

    def __init__(self, budget: float, flags: int = GANESHA_FLAGS):
        self.budget = budget      # seconds for all lookups of this object together
        self.flags = flags        # getaddrinfo's ai_flags
        self._spent = 0.0
        self._cache: dict[str, tuple[str, ...] | None] = {}

    def __call__(self, name: str) -> tuple[str, ...] | None:
        if name not in self._cache:
            self._cache[name] = self._lookup(name)
        return self._cache[name]

    def _lookup(self, name: str) -> tuple[str, ...] | None:
        left = self.budget - self._spent
        if left <= 0:
            return None
        import socket
        import threading

        box: dict[str, object] = {}

        def lookup() -> None:
            try:
                box["infos"] = socket.getaddrinfo(name, None, 0, 0, 0, self.flags)
            except (OSError, UnicodeError):
                box["infos"] = []

        t0 = time.monotonic()
        worker = threading.Thread(target=lookup, name="gha-resolve", daemon=True)
        worker.start()
        worker.join(left)
        self._spent += time.monotonic() - t0
        if worker.is_alive():     # abandoned: blocked in libc, it ends on its own
            self._spent = self.budget
            return None
        out: list[str] = []
        last = None
        for family, socktype, _, _, sockaddr in box["infos"]:  # type: ignore[union-attr]
            if family not in (socket.AF_INET, socket.AF_INET6) or \
                    socktype not in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                continue
            key = (family, sockaddr[0])
            if key != last:
                out.append(str(sockaddr[0]).split("%")[0])
                last = key
        return tuple(out)
