"""What a leaf is: a record and its position, as canonical bytes."""

from __future__ import annotations

from fabrique.ledger.merkle import leaf_hash


def leaf_data(index: int, record: bytes) -> bytes:
    """``canonical({"index": index, "record": record})`` for a canonical ``record``.

    The index is inside the hashed bytes, so a record moved, dropped or copied elsewhere
    in an export no longer matches: the verifier can say which of the three happened.
    Written by concatenation because the index is only known under the sequencer's lock,
    and the record is encoded before it, outside the lock."""
    return b'{"index":%d,"record":%s}' % (index, record)


def record_leaf_hash(index: int, record: bytes) -> bytes:
    return leaf_hash(leaf_data(index, record))
