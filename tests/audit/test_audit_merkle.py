"""RFC 6962 trees: the frontier gives the spec's root, proofs verify and tampered ones fail, even pruned."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.audit.merkle import EMPTY_ROOT, Frontier, MerkleError, Tree, leaf_hash, root_from_inclusion


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1, literally: MTH of the (already leaf-hashed) entries."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + _mth(leaves[:k]) + _mth(leaves[k:])).digest()


def _leaves(count: int) -> list[bytes]:
    return [leaf_hash(hashlib.sha256(str(i).encode()).digest()) for i in range(count)]


def _frontier(leaves: list[bytes]) -> Frontier:
    frontier = Frontier()
    for leaf in leaves:
        frontier.append(leaf)
    return frontier


def test_leaf_and_empty_hashes_follow_rfc6962() -> None:
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    assert Frontier().root() == hashlib.sha256(b"").digest()


@pytest.mark.parametrize("size", range(1, 70))
def test_frontier_root_is_the_rfc_tree_head(size: int) -> None:
    leaves = _leaves(size)
    frontier = _frontier(leaves)
    assert frontier.root() == _mth(leaves)
    assert len(frontier.nodes) == size.bit_count()
    assert Frontier.from_bytes(size, frontier.to_bytes()).root() == frontier.root()


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13, 33])
def test_every_inclusion_proof_leads_to_the_root(size: int) -> None:
    leaves = _leaves(size)
    tree = Tree(Frontier(), leaves)
    for index, leaf in enumerate(leaves):
        assert root_from_inclusion(index, size, leaf, tree.inclusion_proof(index, size)) == _mth(leaves)


def test_proofs_against_an_earlier_tree_size() -> None:
    leaves = _leaves(20)
    tree = Tree(Frontier(), leaves)
    proof = tree.inclusion_proof(6, 11)
    assert root_from_inclusion(6, 11, leaves[6], proof) == _mth(leaves[:11])


def test_a_tampered_proof_does_not_lead_to_the_root() -> None:
    leaves = _leaves(13)
    proof = Tree(Frontier(), leaves).inclusion_proof(5, 13)
    root = _mth(leaves)
    flipped = [proof[0][:-1] + bytes([proof[0][-1] ^ 1]), *proof[1:]]
    assert root_from_inclusion(5, 13, leaves[5], flipped) != root
    assert root_from_inclusion(5, 13, leaves[4], proof) != root
    assert root_from_inclusion(4, 13, leaves[5], proof) != root
    with pytest.raises(MerkleError):
        root_from_inclusion(5, 13, leaves[5], proof[:-1])
    with pytest.raises(MerkleError):
        root_from_inclusion(5, 13, leaves[5], [*proof, proof[0]])


@given(st.integers(1, 80), st.data())
def test_a_pruned_tree_gives_the_same_proofs_after_the_cut(size: int, data: st.DataObject) -> None:
    leaves = _leaves(size)
    cut = data.draw(st.integers(0, size - 1))
    index = data.draw(st.integers(cut, size - 1))
    pruned = Tree(_frontier(leaves[:cut]), leaves[cut:])
    assert pruned.inclusion_proof(index, size) == Tree(Frontier(), leaves).inclusion_proof(index, size)
    assert root_from_inclusion(index, size, leaves[index], pruned.inclusion_proof(index, size)) == _mth(
        leaves
    )


def test_pruned_leaves_have_no_proofs() -> None:
    leaves = _leaves(10)
    pruned = Tree(_frontier(leaves[:6]), leaves[6:])
    with pytest.raises(MerkleError):
        pruned.inclusion_proof(3, 10)
