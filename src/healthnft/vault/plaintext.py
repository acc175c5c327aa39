"""What a record's ciphertext holds once opened: salt, private metadata, canonical bytes.

The plaintext is ``header-json || "\\n" || canonical bytes``; the header carries the
salt and the private metadata (type, category, date).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from healthnft.errors import Tampered
from healthnft.records.commitment import commit


@dataclass(frozen=True)
class RecordPlaintext:
    """What a record's ciphertext holds once opened."""

    salt: bytes
    meta: dict[str, Any]
    canonical: bytes

    @property
    def commitment(self) -> bytes:
        return commit(self.canonical, self.salt)

    def pack(self) -> bytes:
        header = orjson.dumps({"v": 1, "salt": self.salt.hex(), "meta": self.meta})
        return header + b"\n" + self.canonical

    @classmethod
    def unpack(cls, data: bytes) -> RecordPlaintext:
        header, sep, canonical = data.partition(b"\n")
        if not sep:
            raise Tampered("record plaintext is malformed")
        h = orjson.loads(header)
        return cls(bytes.fromhex(h["salt"]), h["meta"], canonical)
