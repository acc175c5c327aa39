"""Batch Merkle trees over record leaves, hashed as the contract would.

``leaf = keccak(0x00 || tokenId (32 bytes) || commitment)`` and
``node = keccak(0x01 || min(a, b) || max(a, b))``: the domain bytes stop an
inner node from passing as a leaf, and sorted pairs make a proof a plain list
of siblings (no left/right flags), as OpenZeppelin's and snekmate's verifiers
expect. An odd node is promoted unchanged to the next level.
"""

from __future__ import annotations

from eth_hash.auto import keccak

_LEAF = b"\x00"
_NODE = b"\x01"


def leaf_hash(token_id: int, commitment: bytes) -> bytes:
    return keccak(_LEAF + token_id.to_bytes(32, "big") + commitment)


def _node(a: bytes, b: bytes) -> bytes:
    return keccak(_NODE + (a + b if a <= b else b + a))


def build(leaves: list[bytes]) -> tuple[bytes, list[list[bytes]]]:
    """Return the root and, for each leaf, its proof (list of sibling hashes)."""
    if not leaves:
        raise ValueError("a batch needs at least one leaf")
    proofs: list[list[bytes]] = [[] for _ in leaves]
    positions = list(range(len(leaves)))  # leaf index -> index in current level
    level = list(leaves)
    while len(level) > 1:
        nxt = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        for leaf_i, pos in enumerate(positions):
            sib = pos ^ 1
            if sib < len(level):
                proofs[leaf_i].append(level[sib])
            positions[leaf_i] = pos // 2
        level = nxt
    return level[0], proofs


def verify(leaf: bytes, proof: list[bytes], root: bytes) -> bool:
    node = leaf
    for sibling in proof:
        node = _node(node, sibling)
    return node == root


def pack_proof(proof: list[bytes]) -> bytes:
    return b"".join(proof)


def unpack_proof(data: bytes) -> list[bytes]:
    if len(data) % 32:
        raise ValueError("proof length is not a multiple of 32")
    return [data[i : i + 32] for i in range(0, len(data), 32)]
