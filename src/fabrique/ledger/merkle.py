"""RFC 9162 Merkle trees: hashing, proofs from stored subtree hashes, and their checks.

Leaves hash as ``SHA-256(0x00 || data)`` and nodes as ``SHA-256(0x01 || left || right)``;
a tree of ``n`` leaves splits at the largest power of two below ``n`` (RFC 9162 §2.1.1).

Why proofs stay fast: a subtree of ``2^level`` leaves starting at a multiple of its size
never changes once complete, so the store keeps every complete subtree's hash, keyed
``(level, index)``. Any subtree that a proof names is then a handful of stored nodes (the
binary decomposition of its size): a proof reads O(log² n) stored hashes at worst, and
never rehashes the log. ``Frontier`` is the running right edge (a "compact range") used
to append, and to recompute a root from a stream of leaves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

Node = tuple[int, int]  # (level, index): the complete subtree of leaves [index·2^level, (index+1)·2^level)
Range = tuple[int, int]  # leaves [start, end)
NodeReader = Callable[[Sequence[Node]], Awaitable[Mapping[Node, bytes]]]

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n ≥ 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaves: Sequence[bytes]) -> bytes:
    """MTH over leaf hashes, by the RFC's recursion: the reference the tests compare with."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return node_hash(root_of(leaves[:k]), root_of(leaves[k:]))


# --- which subtrees a proof names ------------------------------------------------------

def inclusion_ranges(index: int, size: int) -> list[Range]:
    """The subtrees of PATH(index, D[0:size]) (RFC 9162 §2.1.3.1), deepest first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    out: list[Range] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            out.append((start + k, end))
            end = start + k
        else:
            out.append((start, start + k))
            start += k
    out.reverse()
    return out


def consistency_ranges(first: int, second: int) -> list[Range]:
    """The subtrees of PROOF(first, D[0:second]) (RFC 9162 §2.1.4.1), in proof order."""
    if not 0 < first <= second:
        raise ValueError(f"no consistency proof from {first} to {second}")
    out: list[Range] = []
    start, end, m, whole = 0, second, first, True
    while m != end - start:
        k = _split(end - start)
        if m <= k:
            out.append((start + k, end))
            end = start + k
        else:
            out.append((start, start + k))
            start, m, whole = start + k, m - k, False
    if not whole:
        out.append((start, end))
    out.reverse()
    return out


def range_nodes(start: int, end: int) -> list[Node]:
    """The complete stored subtrees that make up MTH(D[start:end]) in an RFC tree."""
    out: list[Node] = []
    while start < end:
        size = end - start
        level = size.bit_length() - 1  # the whole range if a power of two, else its left part
        if start % (1 << level):
            raise ValueError(f"[{start}, {end}) is not a subtree of an RFC 9162 tree")
        out.append((level, start >> level))
        start += 1 << level
    return out


def range_hash(start: int, end: int, nodes: Mapping[Node, bytes]) -> bytes:
    """MTH(D[start:end]) from its stored complete subtrees (see ``range_nodes``)."""
    parts = [nodes[n] for n in range_nodes(start, end)]
    acc = parts[-1]
    for part in reversed(parts[:-1]):
        acc = node_hash(part, acc)
    return acc


def frontier_nodes(size: int) -> list[Node]:
    """The complete subtrees covering [0, size), largest first: the tree's left edge."""
    out: list[Node] = []
    start = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            out.append((level, start >> level))
            start += 1 << level
    return out


async def _hashes(read: NodeReader, ranges: Iterable[Range]) -> list[bytes]:
    ranges = list(ranges)
    wanted = sorted({n for r in ranges for n in range_nodes(*r)})
    nodes = await read(wanted)
    missing = [n for n in wanted if n not in nodes]
    if missing:
        raise LookupError(f"the store lacks subtree {missing[0]}")
    return [range_hash(a, b, nodes) for a, b in ranges]


async def inclusion_proof(read: NodeReader, index: int, size: int) -> list[bytes]:
    return await _hashes(read, inclusion_ranges(index, size))


async def consistency_proof(read: NodeReader, first: int, second: int) -> list[bytes]:
    return await _hashes(read, consistency_ranges(first, second))


async def root_at(read: NodeReader, size: int) -> bytes:
    """The root of the tree's first ``size`` leaves (any past size)."""
    if size == 0:
        return EMPTY_ROOT
    return (await _hashes(read, [(0, size)]))[0]


# --- checks (RFC 9162 §2.1.3.2 and §2.1.4.2) ---------------------------------------------

def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> bool:
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes,
                       proof: Sequence[bytes]) -> bool:
    if not 0 <= first <= second:
        return False
    if first == second:
        return not proof and first_root == second_root
    if first == 0:
        return not proof  # every tree extends the empty one
    if not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:  # a power of two: the old root is a node of the new tree
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == first_root and sr == second_root and sn == 0


# --- the running right edge ---------------------------------------------------------------

@dataclass(slots=True)
class Frontier:
    """The complete subtrees covering [0, size), largest first: enough to append leaves
    and compute the root, in O(log n) memory."""

    size: int = 0
    hashes: list[bytes] = field(default_factory=list)

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add a leaf; returns every subtree it completes as (level, index, hash), the
        leaf itself first: what the store keeps."""
        index = self.size
        made = [(0, index, leaf)]
        self.hashes.append(leaf)
        level, acc = 0, leaf
        while index >> level & 1:  # the subtree to the left at this level is complete
            right = self.hashes.pop()
            left = self.hashes.pop()
            acc = node_hash(left, right)
            level += 1
            self.hashes.append(acc)
            made.append((level, index >> level, acc))
        self.size += 1
        return made

    def root(self) -> bytes:
        if not self.hashes:
            return EMPTY_ROOT
        acc = self.hashes[-1]
        for h in reversed(self.hashes[:-1]):
            acc = node_hash(h, acc)
        return acc

    def copy(self) -> Frontier:
        return Frontier(self.size, list(self.hashes))
