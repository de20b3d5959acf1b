"""RFC 6962 Merkle trees over record hashes: the frontier (compact range), tree heads and inclusion proofs."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

HASH_BYTES = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


class MerkleError(ValueError):
    """A tree cannot be computed from what is stored (for example, the leaves were pruned)."""


def leaf_hash(record_hash: bytes) -> bytes:
    """The tree's leaf for one record: SHA-256(0x00 || the record's hash)."""
    return hashlib.sha256(b"\x00" + record_hash).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """An interior node: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(size: int) -> int:
    """The largest power of two below ``size`` (size >= 2), where RFC 6962 splits a tree."""
    return 1 << ((size - 1).bit_length() - 1)


class Frontier:
    """The roots of the perfect subtrees that make up the first ``size`` leaves, largest first.

    That is all the tree needs in order to grow and to give its head at any size: O(log n) hashes.
    """

    def __init__(self, size: int = 0, nodes: Sequence[bytes] = ()) -> None:
        if len(nodes) != size.bit_count():
            raise MerkleError(f"a frontier of {size} leaves has {size.bit_count()} nodes, not {len(nodes)}")
        self.size = size
        self.nodes = list(nodes)

    @classmethod
    def from_bytes(cls, size: int, blob: bytes) -> Frontier:
        nodes = [blob[i : i + HASH_BYTES] for i in range(0, len(blob), HASH_BYTES)]
        return cls(size, nodes)

    def to_bytes(self) -> bytes:
        return b"".join(self.nodes)

    def copy(self) -> Frontier:
        return Frontier(self.size, self.nodes)

    def append(self, leaf: bytes) -> None:
        self.nodes.append(leaf)
        self.size += 1
        merges = (self.size & -self.size).bit_length() - 1  # trailing zero bits: equal subtrees to join
        for _ in range(merges):
            right = self.nodes.pop()
            self.nodes[-1] = node_hash(self.nodes[-1], right)

    def root(self) -> bytes:
        """The RFC 6962 tree head of the first ``size`` leaves."""
        if not self.nodes:
            return EMPTY_ROOT
        root = self.nodes[-1]
        for node in reversed(self.nodes[:-1]):
            root = node_hash(node, root)
        return root

    def ranges(self) -> dict[tuple[int, int], bytes]:
        """Each node with the leaf range [start, end) it covers."""
        out: dict[tuple[int, int], bytes] = {}
        start = 0
        bits = [1 << b for b in range(self.size.bit_length() - 1, -1, -1) if self.size >> b & 1]
        for width, node in zip(bits, self.nodes, strict=True):
            out[start, start + width] = node
            start += width
        return out


class Tree:
    """Leaves from ``base.size`` on, over a frontier that stands for the (possibly pruned) leaves before."""

    def __init__(self, base: Frontier, leaves: Sequence[bytes]) -> None:
        self.base = base
        self.leaves = leaves
        self.size = base.size + len(leaves)
        self._known = base.ranges()

    def hash(self, start: int, end: int) -> bytes:
        """The Merkle tree hash of leaves [start, end)."""
        known = self._known.get((start, end))
        if known is not None:
            return known
        if end <= self.base.size:
            raise MerkleError(f"leaves [{start}, {end}) were pruned")
        if end - start == 1:
            return self.leaves[start - self.base.size]
        middle = start + _split(end - start)
        return node_hash(self.hash(start, middle), self.hash(middle, end))

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 6962 PATH(index, D[0:size]): the sibling hashes from the leaf up to the root."""
        if not self.base.size <= index < size <= self.size:
            raise MerkleError(f"no proof for leaf {index} in a tree of {size} (have {self.size} leaves)")
        return self._path(index, 0, size)

    def _path(self, index: int, start: int, end: int) -> list[bytes]:
        if end - start == 1:
            return []
        middle = start + _split(end - start)
        if index < middle:
            return [*self._path(index, start, middle), self.hash(middle, end)]
        return [*self._path(index, middle, end), self.hash(start, middle)]


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` leads to from ``leaf`` (RFC 9162 section 2.1.3.2); raises if malformed."""
    if not 0 <= index < size:
        raise MerkleError(f"leaf index {index} is outside a tree of {size}")
    fn, sn, root = index, size - 1, leaf
    for sibling in proof:
        if sn == 0:
            raise MerkleError("the proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            root = node_hash(sibling, root)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            root = node_hash(root, sibling)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise MerkleError("the proof is shorter than the tree is deep")
    return root
