"""Offline verification of exports: any single change is found, at the right index."""

from __future__ import annotations

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from fabrique.ledger.canonical import canonical, canonical_unchecked
from fabrique.ledger.export import head_line, header_line, record_line
from fabrique.ledger.leaf import record_leaf_hash
from fabrique.ledger.merkle import Frontier, frontier_nodes
from fabrique.ledger.signing import Signer, public_key_text
from fabrique.ledger.verify import ExportInvalid, verify_export

KEY = Ed25519PrivateKey.generate()
SIGNER = Signer(KEY)


def build_export(n: int, start: int = 0, checkpoints: tuple[int, ...] = ()) -> list[bytes]:
    """An export of records [start, n) of a log of n records, as the ledger writes it."""
    frontier, nodes = Frontier(), {}
    lines: list[bytes] = []
    body = []
    for i in range(n):
        record = canonical({"request_id": f"req_{i}", "tenant": "acme" if i % 2 else "globex",
                            "status": 200, "tokens": {"prompt": i, "completion": 2 * i}})
        leaf = record_leaf_hash(i, record)
        for level, index, h in frontier.append(leaf):
            nodes[level, index] = h
        if i >= start:
            body.append(record_line(i, record, leaf))
        if i + 1 in checkpoints and i + 1 > start:
            body.append(head_line(SIGNER.sign(i + 1, frontier.root(), 1000 + i)))
    prefix = [nodes[k] for k in frontier_nodes(start)]
    lines.append(header_line(start, prefix, public_key_text(KEY.public_key()), SIGNER.key_id))
    lines += body
    lines.append(head_line(SIGNER.sign(n, frontier.root(), 10_000)))
    return lines


def _fails(lines: list[bytes]) -> ExportInvalid:
    with pytest.raises(ExportInvalid) as exc:
        verify_export(lines, KEY.public_key())
    return exc.value


def _records(lines: list[bytes]) -> list[int]:
    """Positions in ``lines`` of the record lines."""
    return [i for i, line in enumerate(lines) if b'"type":"record"' in line]


@pytest.mark.parametrize(("n", "start"), [(1, 0), (7, 0), (64, 0), (100, 37), (100, 99)])
def test_a_true_export_verifies(n, start):
    result = verify_export(build_export(n, start, checkpoints=(10, 50)), KEY.public_key())
    assert (result.start, result.head.size, result.records) == (start, n, n - start)


def test_an_empty_log_verifies():
    assert verify_export(build_export(0), KEY.public_key()).records == 0


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 40), data=st.data())
def test_any_modification_is_found_at_its_index(n, data):
    lines = build_export(n)
    i = data.draw(st.integers(0, n - 1))
    pos = _records(lines)[i]
    line = orjson.loads(lines[pos])
    field = data.draw(st.sampled_from(["request_id", "tenant", "status", "tokens", "new"]))
    line["record"][field] = data.draw(st.one_of(st.integers(-2**63, 2**64 - 1), st.text(max_size=5))) \
        if field != "tokens" else {"prompt": -1}
    if canonical_unchecked(line["record"]) == canonical_unchecked(orjson.loads(lines[pos])["record"]):
        return  # drew the same value
    lines[pos] = orjson.dumps(line)
    err = _fails(lines)
    assert (err.index, err.kind) == (i, "modified")


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 40), data=st.data())
def test_any_removal_is_found_at_its_index(n, data):
    lines = build_export(n)
    i = data.draw(st.integers(0, n - 1))
    del lines[_records(lines)[i]]
    err = _fails(lines)
    assert (err.index, err.kind) == (i, "removed")


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 40), data=st.data())
def test_any_reordering_is_found_at_its_index(n, data):
    lines = build_export(n)
    i = data.draw(st.integers(0, n - 2))
    j = data.draw(st.integers(i + 1, n - 1))
    positions = _records(lines)
    lines[positions[i]], lines[positions[j]] = lines[positions[j]], lines[positions[i]]
    err = _fails(lines)
    assert (err.index, err.kind) == (i, "reordered")


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 40), data=st.data())
def test_any_insertion_is_found_at_its_index(n, data):
    lines = build_export(n)
    at = data.draw(st.integers(0, n))  # the position the new line takes
    forged = data.draw(st.booleans())
    if forged:  # a new record claiming that index, with a matching leaf hash
        record = canonical({"request_id": "req_forged", "status": 200})
        new = record_line(at, record, record_leaf_hash(at, record))
    else:  # a copy of an existing record
        new = lines[_records(lines)[data.draw(st.integers(0, n - 1))]]
    copied = orjson.loads(new)["index"]
    positions = _records(lines)
    lines.insert(positions[at] if at < n else positions[-1] + 1, new)
    err = _fails(lines)
    assert err.kind == "inserted"
    # A copy placed right after its original is "record k appears again"; else the place.
    assert err.index == (copied if copied == at - 1 else at)


def test_a_bad_signature_is_named():
    lines = build_export(5)
    head = orjson.loads(lines[-1])
    head["timestamp_ms"] += 1
    lines[-1] = orjson.dumps(head)
    assert _fails(lines).kind == "bad signature"
    other = Ed25519PrivateKey.generate().public_key()
    with pytest.raises(ExportInvalid, match="bad signature"):
        verify_export(build_export(5), other)


def test_changing_a_record_and_its_leaf_hash_is_caught_by_the_signed_root():
    lines = build_export(30, checkpoints=(8, 16, 24))
    pos = _records(lines)[20]
    line = orjson.loads(lines[pos])
    line["record"]["status"] = 500
    line["leaf_hash"] = record_leaf_hash(20, canonical(line["record"])).hex()
    lines[pos] = orjson.dumps(line)
    err = _fails(lines)
    assert err.kind == "modified" and "before index 24" in err.detail


def test_a_truncated_export_is_named():
    lines = build_export(5)
    assert _fails(lines[:-1]).kind == "removed"
    assert _fails([b"{}"]).kind == "not an export"
