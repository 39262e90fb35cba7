"""The lines of an export (see ``verify`` for their meaning, docs/ledger.md for the format).

Records are written as their stored canonical bytes, not re-encoded, so an export is
exactly what the tree committed to."""

from __future__ import annotations

import orjson

from fabrique.ledger.signing import TreeHead
from fabrique.ledger.verify import FORMAT


def header_line(start: int, prefix: list[bytes], public_key: str, key_id: str) -> bytes:
    return orjson.dumps({"type": "header", "format": FORMAT, "start": start,
                         "prefix": [h.hex() for h in prefix], "public_key": public_key,
                         "key_id": key_id, "hash": "sha256"}) + b"\n"


def record_line(index: int, record: bytes, leaf: bytes) -> bytes:
    return b'{"type":"record","index":%d,"leaf_hash":"%s","record":%s}\n' % (
        index, leaf.hex().encode(), record)


def head_line(head: TreeHead) -> bytes:
    return orjson.dumps({"type": "tree_head", **head.as_dict()}) + b"\n"
