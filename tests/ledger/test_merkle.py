"""RFC 9162 hashing and proofs: against the RFC's recursion, and against tampering."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from fabrique.ledger import merkle
from fabrique.ledger.merkle import Frontier, leaf_hash, node_hash, root_of


def _tree(n: int) -> tuple[list[bytes], dict[tuple[int, int], bytes]]:
    leaves = [leaf_hash(str(i).encode()) for i in range(n)]
    frontier, nodes = Frontier(), {}
    for leaf in leaves:
        for level, index, h in frontier.append(leaf):
            nodes[level, index] = h
    return leaves, nodes


def _reader(nodes):
    async def read(keys):
        return {k: nodes[k] for k in keys if k in nodes}
    return read


def test_rfc_vectors():
    # Known values: the empty root, and a two-leaf tree written out by hand.
    assert merkle.EMPTY_ROOT.hex() == hashlib.sha256(b"").hexdigest()
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    assert a == hashlib.sha256(b"\x00a").digest()
    assert root_of([a, b]) == hashlib.sha256(b"\x01" + a + b).digest()
    # Three leaves split 2 + 1 (largest power of two below n), not 1 + 2.
    c = leaf_hash(b"c")
    assert root_of([a, b, c]) == node_hash(node_hash(a, b), c)


@given(st.integers(1, 300))
def test_frontier_root_is_the_rfc_root(n):
    leaves, _ = _tree(n)
    frontier = Frontier()
    for leaf in leaves:
        frontier.append(leaf)
    assert frontier.root() == root_of(leaves)


@settings(max_examples=200)
@given(st.data())
async def test_inclusion_proofs_verify_and_tampering_fails(data):
    n = data.draw(st.integers(1, 200))
    size = data.draw(st.integers(1, n))
    index = data.draw(st.integers(0, size - 1))
    leaves, nodes = _tree(n)
    root = root_of(leaves[:size])
    proof = await merkle.inclusion_proof(_reader(nodes), index, size)
    assert merkle.verify_inclusion(index, size, leaves[index], proof, root)
    assert await merkle.root_at(_reader(nodes), size) == root
    # Another leaf, another index or another size does not verify.
    if size > 1:
        other = (index + 1) % size
        assert not merkle.verify_inclusion(index, size, leaves[other], proof, root)
        assert not merkle.verify_inclusion(other, size, leaves[index], proof, root)
    if size < n:  # the proof is for this tree, not a later one
        assert not merkle.verify_inclusion(index, size, leaves[index], proof, root_of(leaves[:size + 1]))
    if proof:
        k = data.draw(st.integers(0, len(proof) - 1))
        bad = [*proof[:k], hashlib.sha256(proof[k]).digest(), *proof[k + 1:]]
        assert not merkle.verify_inclusion(index, size, leaves[index], bad, root)
        assert not merkle.verify_inclusion(index, size, leaves[index], proof[:-1], root)


@settings(max_examples=200)
@given(st.data())
async def test_consistency_proofs_verify_and_forks_fail(data):
    second = data.draw(st.integers(1, 200))
    first = data.draw(st.integers(1, second))
    leaves, nodes = _tree(second)
    r1, r2 = root_of(leaves[:first]), root_of(leaves)
    proof = await merkle.consistency_proof(_reader(nodes), first, second)
    assert merkle.verify_consistency(first, second, r1, r2, proof)
    # A fork: the old tree had another leaf somewhere.
    j = data.draw(st.integers(0, first - 1))
    forked = [*leaves[:j], leaf_hash(b"forged"), *leaves[j + 1:first]]
    assert not merkle.verify_consistency(first, second, root_of(forked), r2, proof)
    if proof:
        k = data.draw(st.integers(0, len(proof) - 1))
        bad = [*proof[:k], hashlib.sha256(proof[k]).digest(), *proof[k + 1:]]
        assert not merkle.verify_consistency(first, second, r1, r2, bad)
    if first < second:
        assert not merkle.verify_consistency(first, second, r1, r1, proof)


def test_proofs_read_few_nodes_even_for_huge_trees():
    # The node set a proof reads depends on log n only: here for 10 million leaves.
    size = 10_000_000
    for index in (0, 1, 4_999_999, size - 1):
        ranges = merkle.inclusion_ranges(index, size)
        nodes = {n for r in ranges for n in merkle.range_nodes(*r)}
        assert len(ranges) <= 24 and len(nodes) <= 2 * 24
    nodes = {n for r in merkle.consistency_ranges(3_000_001, size) for n in merkle.range_nodes(*r)}
    assert len(nodes) <= 2 * 24


def test_frontier_nodes_are_what_the_frontier_holds():
    leaves, nodes = _tree(45)
    frontier = Frontier()
    for leaf in leaves:
        frontier.append(leaf)
    assert [nodes[k] for k in merkle.frontier_nodes(45)] == frontier.hashes
