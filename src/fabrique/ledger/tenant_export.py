"""A tenant's own export: its records only, each with an inclusion proof.

A tenant may not see the others' records, so it cannot recompute the tree; instead every
record of its export carries the audit path from its leaf to the root of one signed tree
head, given in the header. The verifier checks the signature once, then each record
against its leaf hash and each path against the signed root. What a tenant export cannot
prove is completeness (a record left out leaves no hole the tenant can see): the full
export, with the admin token, proves that.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fabrique.ledger import merkle
from fabrique.ledger.canonical import NotCanonical, canonical_unchecked
from fabrique.ledger.leaf import record_leaf_hash
from fabrique.ledger.signing import TreeHead, verify_head
from fabrique.ledger.verify import ExportInvalid

FORMAT = "fabrique-ledger-tenant-export/1"


def header_line(tenant: str, head: TreeHead, public_key: str, key_id: str) -> bytes:
    return orjson.dumps({"type": "header", "format": FORMAT, "tenant": tenant,
                         "public_key": public_key, "key_id": key_id, "hash": "sha256",
                         "tree_head": head.as_dict()}) + b"\n"


def record_line(index: int, record: bytes, leaf: bytes, proof: list[bytes]) -> bytes:
    return b'{"type":"record","index":%d,"leaf_hash":"%s","proof":%s,"record":%s}\n' % (
        index, leaf.hex().encode(), orjson.dumps([h.hex() for h in proof]), record)


@dataclass(frozen=True, slots=True)
class TenantVerified:
    tenant: str
    head: TreeHead
    records: int


def verify_tenant_export(lines: Iterable[bytes], public: Ed25519PublicKey) -> TenantVerified:
    """Check a tenant export; raises ExportInvalid naming the first bad record."""
    it = iter(enumerate(lines, 1))
    tenant, head = _header(it, public)
    last, count = -1, 0
    for number, raw in it:
        if not raw.strip():
            continue
        try:
            line = orjson.loads(raw)
            index, record = line["index"], line["record"]
            leaf, path = bytes.fromhex(line["leaf_hash"]), [bytes.fromhex(h) for h in line["proof"]]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise ExportInvalid(None, "modified", f"line {number} is not a record line", number) from None
        try:
            data = canonical_unchecked(record)
        except NotCanonical:
            data = b""
        if not isinstance(index, int) or index <= last:
            raise ExportInvalid(index if isinstance(index, int) else None, "reordered",
                                f"indexes must increase (after {last})", number)
        if record_leaf_hash(index, data) != leaf:
            raise ExportInvalid(index, "modified", "its content does not hash to its leaf hash", number)
        if not merkle.verify_inclusion(index, head.size, leaf, path, head.root):
            raise ExportInvalid(index, "inserted", "it is not in the signed log (its audit path "
                                "does not lead to the signed root)", number)
        if not isinstance(record, dict) or record.get("tenant") != tenant:
            raise ExportInvalid(index, "inserted", f"it is not a record of tenant {tenant!r}", number)
        last, count = index, count + 1
    return TenantVerified(tenant, head, count)


def _header(it: Iterable[tuple[int, bytes]], public: Ed25519PublicKey) -> tuple[str, TreeHead]:
    for number, raw in it:
        try:
            header = orjson.loads(raw)
            tenant, head = str(header["tenant"]), TreeHead.from_dict(header["tree_head"])
            if header.get("format") != FORMAT:
                raise ValueError
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise ExportInvalid(None, "not an export", f"line {number} is not a {FORMAT} header",
                                number) from None
        if not verify_head(head, public):
            raise ExportInvalid(None, "bad signature", f"the tree head of size {head.size} is not "
                                "signed by this public key", number)
        return tenant, head
    raise ExportInvalid(None, "not an export", "the file is empty")
