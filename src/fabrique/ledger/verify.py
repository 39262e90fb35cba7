"""Offline verification of an export: no database, only the file and the public key.

An export is JSON lines (docs/ledger.md): a ``header`` (where it starts, and the hashes
of the complete subtrees before that point), ``record`` lines in index order, optional
``tree_head`` checkpoints, and the signed ``tree_head`` of the whole log last. The
verifier recomputes every leaf, folds them into the tree and checks the signed heads.
When something is wrong it names the first bad record's index and the kind of change:
``modified``, ``removed``, ``reordered``, ``inserted`` or ``bad signature``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fabrique.ledger.canonical import NotCanonical, canonical_unchecked
from fabrique.ledger.leaf import record_leaf_hash
from fabrique.ledger.merkle import Frontier
from fabrique.ledger.signing import TreeHead, verify_head

FORMAT = "fabrique-ledger-export/1"


class ExportInvalid(Exception):
    """The export does not hold: ``index`` (None when no record is to blame), ``kind``."""

    def __init__(self, index: int | None, kind: str, detail: str, line: int | None = None) -> None:
        where = f"record {index}" if index is not None else (f"line {line}" if line else "export")
        super().__init__(f"{where}: {kind}: {detail}")
        self.index, self.kind, self.detail, self.line = index, kind, detail, line


@dataclass(frozen=True, slots=True)
class Verified:
    """What a valid export proved."""

    start: int
    head: TreeHead
    records: int
    checkpoints: int


@dataclass(slots=True)
class _Scan:
    frontier: Frontier
    start: int
    expected: int
    count: int = 0
    checkpoints: int = 0
    problem: ExportInvalid | None = None
    gap_index: int | None = None  # a record expected here came later (reordered) or never
    gap_seen_later: bool = False
    head: TreeHead | None = None
    head_line: int = 0


def verify_export(lines: Iterable[bytes], public: Ed25519PublicKey) -> Verified:
    """Check every line; return what was proven, or raise ExportInvalid for the first fault."""
    it = iter(enumerate(lines, 1))
    scan = _header(it)
    for number, raw in it:
        if not raw.strip():
            continue
        _line(scan, number, raw, public)
    return _conclude(scan, public)


def _header(it: Iterable[tuple[int, bytes]]) -> _Scan:
    for number, raw in it:
        try:
            header = orjson.loads(raw)
            if header.get("type") != "header" or header.get("format") != FORMAT:
                raise ValueError
            start, prefix = header["start"], [bytes.fromhex(h) for h in header["prefix"]]
            if not isinstance(start, int) or start < 0 or len(prefix) != start.bit_count():
                raise ValueError
        except (orjson.JSONDecodeError, ValueError, KeyError, TypeError, AttributeError):
            raise ExportInvalid(None, "not an export", f"line {number} is not a {FORMAT} header "
                                "with a start index and its prefix hashes", number) from None
        return _Scan(Frontier(start, prefix), start, start)
    raise ExportInvalid(None, "not an export", "the file is empty")


def _line(scan: _Scan, number: int, raw: bytes, public: Ed25519PublicKey) -> None:
    try:
        obj = orjson.loads(raw)
        kind = obj.get("type")
    except (orjson.JSONDecodeError, AttributeError):
        obj, kind = None, None
    if kind == "tree_head":
        _tree_head(scan, number, obj, public)
        return
    scan.head = None  # a record follows: the head before it was a checkpoint, not the last
    if kind != "record":
        scan.count += 1
        _fault(scan, ExportInvalid(scan.expected, "modified", f"line {number} is not a record "
                                   "line", number))
        return
    scan.count += 1
    index = obj.get("index")
    if scan.problem is not None:
        if index == scan.gap_index:
            scan.gap_seen_later = True
        return
    if not isinstance(index, int) or isinstance(index, bool):
        _fault(scan, ExportInvalid(scan.expected, "modified", "its index is not an integer", number))
        return
    if index != scan.expected:
        _sequence_fault(scan, number, index)
        return
    try:
        leaf = record_leaf_hash(index, canonical_unchecked(obj.get("record")))
    except NotCanonical:
        leaf = b""
    if obj.get("leaf_hash") != leaf.hex():
        _fault(scan, ExportInvalid(index, "modified", "its content does not hash to its leaf "
                                   "hash", number))
        return
    scan.frontier.append(leaf)
    scan.expected += 1


def _sequence_fault(scan: _Scan, number: int, index: int) -> None:
    expected = scan.expected
    if index > expected:
        scan.gap_index = expected
        _fault(scan, ExportInvalid(expected, "sequence", f"found record {index} in its place", number))
    else:
        if index == expected - 1:
            _fault(scan, ExportInvalid(index, "sequence", f"two records claim index {index}", number))
        else:
            _fault(scan, ExportInvalid(expected, "sequence", f"found record {index} again in its "
                                       "place", number))


def _fault(scan: _Scan, problem: ExportInvalid) -> None:
    if scan.problem is None:
        scan.problem = problem


def _tree_head(scan: _Scan, number: int, obj: dict[str, Any], public: Ed25519PublicKey) -> None:
    try:
        head = TreeHead.from_dict(obj)
    except ValueError as exc:
        _fault(scan, ExportInvalid(None, "bad signature", f"line {number}: {exc}", number))
        return
    if not verify_head(head, public):
        _fault(scan, ExportInvalid(None, "bad signature", f"the tree head of size {head.size} "
                                   f"(line {number}) is not signed by this public key", number))
        return
    scan.head, scan.head_line = head, number
    if scan.problem is None and head.size == scan.frontier.size:
        scan.checkpoints += 1
        if head.root != scan.frontier.root():
            _fault(scan, ExportInvalid(max(scan.start, scan.frontier.size - 1), "modified",
                                       f"the records before index {head.size} do not produce the "
                                       f"root signed at size {head.size} (a record and its listed "
                                       "leaf hash were both changed)", number))


def _conclude(scan: _Scan, public: Ed25519PublicKey) -> Verified:
    head = scan.head
    problem = scan.problem
    if problem is not None and problem.kind == "sequence":
        wanted = (head.size - scan.start) if head is not None else None
        if wanted is not None and scan.count > wanted:
            kind = "inserted"
        elif scan.gap_index is not None:
            kind = "reordered" if scan.gap_seen_later else "removed"
        else:
            kind = "reordered"
        raise ExportInvalid(problem.index, kind, problem.detail, problem.line)
    if problem is not None:
        raise problem
    if head is None:
        raise ExportInvalid(None, "removed", "no signed tree head ends the export (truncated?)")
    if head.size > scan.frontier.size:
        raise ExportInvalid(scan.frontier.size, "removed", f"the signed tree head has {head.size} "
                            f"records; the export stops at {scan.frontier.size}")
    if head.size < scan.frontier.size:
        raise ExportInvalid(head.size, "inserted", f"the signed tree head has only {head.size} "
                            "records")
    # verify_head ran on every head line; the last one matched the records above (or the
    # scan recorded why not), so the export holds.
    return Verified(scan.start, head, scan.count, scan.checkpoints)
