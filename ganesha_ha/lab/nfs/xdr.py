"""XDR (RFC 4506): big-endian, every item padded to a multiple of 4 bytes. Pure."""
from __future__ import annotations

import struct
from typing import Callable


class XdrError(Exception):
    """The bytes do not hold what the decoder expected (a short or garbled message)."""


class Packer:
    """XDR encoder: append items, then `bytes()`."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def u32(self, v: int) -> None:
        self._parts.append(struct.pack(">I", v))

    def u64(self, v: int) -> None:
        self._parts.append(struct.pack(">Q", v))

    def i32(self, v: int) -> None:
        self._parts.append(struct.pack(">i", v))

    def i64(self, v: int) -> None:
        self._parts.append(struct.pack(">q", v))

    def boolean(self, v: bool) -> None:
        """XDR bool: an enum of 0 (FALSE) or 1 (TRUE)."""
        self.u32(1 if v else 0)

    def fixed(self, data: bytes) -> None:
        """Fixed-length opaque: the bytes, zero-padded to 4."""
        self._parts.append(data + b"\0" * (-len(data) % 4))

    def opaque(self, data: bytes) -> None:
        """Variable-length opaque: length, then the padded bytes."""
        self.u32(len(data))
        self.fixed(data)

    def string(self, s: str | bytes) -> None:
        self.opaque(s.encode() if isinstance(s, str) else s)

    def raw(self, data: bytes) -> None:
        """Bytes already encoded (a nested structure)."""
        self._parts.append(data)

    def bytes(self) -> bytes:
        return b"".join(self._parts)


class Unpacker:
    """XDR decoder over one message; raises XdrError when it runs out of bytes."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def _take(self, n: int) -> bytes:
        end = self._pos + n
        if end > len(self._data):
            raise XdrError("short XDR reply")
        chunk = self._data[self._pos:end]
        self._pos = end
        return chunk

    def u32(self) -> int:
        return struct.unpack(">I", self._take(4))[0]

    def u64(self) -> int:
        return struct.unpack(">Q", self._take(8))[0]

    def i32(self) -> int:
        return struct.unpack(">i", self._take(4))[0]

    def i64(self) -> int:
        return struct.unpack(">q", self._take(8))[0]

    def boolean(self) -> bool:
        """XDR bool; a value other than 0 or 1 is a garbled message (RFC 4506 4.4)."""
        v = self.u32()
        if v > 1:
            raise XdrError(f"bad XDR bool {v}")
        return v == 1

    def string(self, limit: int | None = None) -> str:
        """A variable-length string, decoded as UTF-8 (undecodable bytes replaced)."""
        return self.opaque(limit).decode("utf-8", "replace")

    def fixed(self, n: int) -> bytes:
        data = self._take(n)
        self._take(-n % 4)
        return data

    def opaque(self, limit: int | None = None) -> bytes:
        """Variable-length opaque; XdrError if longer than `limit` (the XDR type's bound)."""
        n = self.u32()
        if limit is not None and n > limit:
            raise XdrError(f"opaque of {n} bytes where at most {limit} may be")
        return self.fixed(n)

    def bitmap(self) -> list[int]:
        return [self.u32() for _ in range(self.u32())]

    def done(self) -> bool:
        """Every byte consumed."""
        return self._pos == len(self._data)


def pack(fn: Callable[[Packer], object]) -> bytes:
    """The bytes `fn` writes into a fresh Packer (for one-line argument encoders)."""
    p = Packer()
    fn(p)
    return p.bytes()
