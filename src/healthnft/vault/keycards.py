"""Key cards: what opens a ciphertext, kept next to it in the vault.

A record's ciphertext lives in ``vault.sqlite``; until now, what opens it (the readers'
wrapped keys, the sealed DEK, the custodians' shares) and what places it (token, owner,
commitment, Merkle proof) lived only in ``index.sqlite``. Restoring an older index after
a transfer then lost the record for everyone: the new owner's wrapped key was nowhere
else (issue #12, point 7).

A :class:`KeyCard` is that index entry for one version of a record, written into the
vault (table ``key_cards``) in the same step that stores its ciphertext, addressed by
the ciphertext's digest: a mint writes one per record, a transfer one for the
re-encrypted copy. Deleting a blob deletes its card, so a burn still shreds every copy
and a rolled-back mint or transfer leaves no card behind. ``healthnft doctor --repair``
rebuilds index rows from the cards whose owner the chain confirms and whose commitment
its Merkle proof ties to the batch root on chain.

A card holds only what the index holds beside the ciphertext (wrapped keys, never a
key in clear; the record's type, category and date, as the index does). The format is
written here by hand (versioned JSON, bytes as hex): it is a row of this program's own
index, no standard describes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import orjson

from healthnft.store.catalogue import RecordRow

__all__ = ["CARD_VERSION", "KeyCard"]

CARD_VERSION = 1
_ROW_BYTES = ("batch_ref", "record_key", "commitment", "blob_digest", "sealed_dek", "proof")


@dataclass(frozen=True)
class KeyCard:
    """One version of one record: its index row, its readers' and custodians' keys, the
    stream chunks it spans, and the batch it was minted in (to rebuild a missing one)."""

    row: RecordRow
    #: reader address -> the record key (``row.key_id``) HPKE-wrapped for that reader
    readers: dict[str, bytes]
    #: custodian address -> (its wrapped custody key, its sealed share of the DEK)
    custodians: dict[str, tuple[bytes, bytes]] = field(default_factory=dict)
    #: digests of the stream's chunks (imaging), sealed under the same key
    chunks: tuple[bytes, ...] = ()
    #: the mint batch: (issuer, first owner, start token, count, Merkle root)
    batch: tuple[str, str, int, int, bytes] | None = None

    @property
    def token_id(self) -> int:
        return self.row.token_id

    @property
    def digest(self) -> bytes:
        """The ciphertext this card opens (its address in the vault)."""
        return self.row.blob_digest

    def to_bytes(self) -> bytes:
        row = {f.name: getattr(self.row, f.name) for f in fields(self.row)}
        for name in (*_ROW_BYTES, "key_ref"):
            row[name] = None if row[name] is None else row[name].hex()
        doc: dict[str, Any] = {
            "v": CARD_VERSION,
            "row": row,
            "readers": {who: w.hex() for who, w in self.readers.items()},
            "custodians": {who: [k.hex(), s.hex()] for who, (k, s) in self.custodians.items()},
            "chunks": [c.hex() for c in self.chunks],
            "batch": None if self.batch is None else [*self.batch[:4], self.batch[4].hex()],
        }
        return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)

    @classmethod
    def from_bytes(cls, data: bytes) -> KeyCard:
        """Decode a card; ``ValueError`` when it is not one this version wrote."""
        try:
            doc = orjson.loads(data)
            if doc.get("v") != CARD_VERSION:
                raise ValueError(f"key card version {doc.get('v')!r}")
            row = dict(doc["row"])
            for name in (*_ROW_BYTES, "key_ref"):
                row[name] = None if row[name] is None else bytes.fromhex(row[name])
            batch = doc["batch"]
            return cls(
                row=RecordRow(**row),
                readers={who: bytes.fromhex(w) for who, w in doc["readers"].items()},
                custodians={who: (bytes.fromhex(k), bytes.fromhex(s))
                            for who, (k, s) in doc["custodians"].items()},
                chunks=tuple(bytes.fromhex(c) for c in doc["chunks"]),
                batch=None if batch is None else (*batch[:4], bytes.fromhex(batch[4])),
            )  # fmt: skip
        except (KeyError, TypeError, AttributeError, orjson.JSONDecodeError) as exc:
            raise ValueError(f"not a key card: {type(exc).__name__}") from None
