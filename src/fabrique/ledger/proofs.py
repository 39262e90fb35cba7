"""Offline checks of the proofs that ``fabrique audit proof`` and the admin API give.

An inclusion proof is checked against its signed tree head: the record hashes to its leaf,
the audit path leads from the leaf to the signed root. A consistency proof shows that the
log of ``first`` records (the root an auditor kept, or a signed head at that size) is a
prefix of the log of ``second`` records, whose root is signed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fabrique.ledger import merkle
from fabrique.ledger.canonical import NotCanonical, canonical_unchecked
from fabrique.ledger.leaf import record_leaf_hash
from fabrique.ledger.signing import TreeHead, verify_head


class ProofInvalid(Exception):
    """The proof does not hold; the message says why, in one line."""


def check_proof(doc: dict[str, Any], public: Ed25519PublicKey) -> str:
    """Check an inclusion or consistency proof; returns what it proved."""
    try:
        head = _signed(doc["tree_head"], public, "the tree head")
        path = [bytes.fromhex(h) for h in doc["proof"]]
        if "index" in doc:
            return _inclusion(doc, head, path)
        if "first" in doc:
            return _consistency(doc, head, path, public)
    except (KeyError, TypeError, ValueError) as exc:
        raise ProofInvalid(f"not a proof from fabrique audit proof ({type(exc).__name__}: {exc})") from None
    raise ProofInvalid("not a proof: it has neither an index nor a first size")


def _signed(data: dict[str, Any], public: Ed25519PublicKey, what: str) -> TreeHead:
    head = TreeHead.from_dict(data)
    if not verify_head(head, public):
        raise ProofInvalid(f"bad signature: {what} of size {head.size} is not signed by this key")
    return head


def _when(head: TreeHead) -> str:
    stamp = datetime.fromtimestamp(head.timestamp_ms / 1000, UTC).isoformat(timespec="seconds")
    return f"signed by key {head.key_id} at {stamp}"


def _inclusion(doc: dict[str, Any], head: TreeHead, path: list[bytes]) -> str:
    index, size, leaf = int(doc["index"]), int(doc["size"]), bytes.fromhex(doc["leaf_hash"])
    record = doc.get("record")
    if record is not None and record_leaf_hash(index, _bytes(record)) != leaf:
        raise ProofInvalid(f"record {index}: modified: it does not hash to the proof's leaf hash")
    if size != head.size:
        raise ProofInvalid(f"the proof is for a log of {size} records but the signed head has "
                           f"{head.size}: ask for a proof at the signed size")
    if not merkle.verify_inclusion(index, size, leaf, path, head.root):
        raise ProofInvalid(f"record {index}: the audit path does not lead to the signed root")
    content = "" if record is not None else " (its content was purged; its leaf hash is proven)"
    return f"record {index} is in the log of {size} records {_when(head)}{content}"


def _bytes(record: Any) -> bytes:
    try:
        return canonical_unchecked(record)
    except NotCanonical:
        return b""


def _consistency(doc: dict[str, Any], head: TreeHead, path: list[bytes],
                 public: Ed25519PublicKey) -> str:
    first, second = int(doc["first"]), int(doc["second"])
    first_root, second_root = bytes.fromhex(doc["first_root"]), bytes.fromhex(doc["second_root"])
    if second != head.size or second_root != head.root:
        raise ProofInvalid(f"the proof ends at {second} records, not at the signed head's root "
                           f"({head.size} records)")
    if doc.get("first_tree_head") is not None:
        old = _signed(doc["first_tree_head"], public, "the older tree head")
        if (old.size, old.root) != (first, first_root):
            raise ProofInvalid(f"the older signed head (size {old.size}) is not the proof's start")
    if not merkle.verify_consistency(first, second, first_root, second_root, path):
        raise ProofInvalid(f"fork: the log of {first} records with root {first_root.hex()} is "
                           f"not a prefix of the signed log of {second}")
    return (f"the log of {first} records (root {first_root.hex()}) is a prefix of the log of "
            f"{second} records {_when(head)}")
