"""The audit ledger: an append-only Merkle log of every request (RFC 9162 hashing),
Ed25519-signed tree heads, inclusion and consistency proofs, offline verification of
exports, payloads kept as hashes or encrypted per data subject, and retention.

    canonical  the bytes a record is         merkle    hashing, proofs, their checks
    leaf       a record at its index         signing   tree heads and the signing key
    export     the lines of an export        verify    offline checks of an export
"""
