"""Ed25519-signed tree heads, and the signing key's life: generated once, 0600, or supplied.

A tree head says "the log had ``size`` records with this root at this time"; signing it
is what makes the log tamper-evident offline: whoever holds only the public key can check
an export or a proof. The signed message is fixed bytes, written down in docs/ledger.md:
``b"fabrique-tree-head-v1\\n" + canonical({"root_hash", "size", "timestamp_ms"})``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fabrique.errors import ConfigError
from fabrique.ledger.canonical import canonical

_DOMAIN = b"fabrique-tree-head-v1\n"


@dataclass(frozen=True, slots=True)
class TreeHead:
    """A signed statement of the log's size and root."""

    size: int
    root: bytes
    timestamp_ms: int
    key_id: str
    signature: bytes

    def message(self) -> bytes:
        return head_message(self.size, self.root, self.timestamp_ms)

    def as_dict(self) -> dict[str, Any]:
        return {"size": self.size, "root_hash": self.root.hex(), "timestamp_ms": self.timestamp_ms,
                "key_id": self.key_id, "signature": base64.b64encode(self.signature).decode()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TreeHead:
        """Parse a head from JSON; raises ValueError naming the bad field."""
        try:
            size, ts = data["size"], data["timestamp_ms"]
            if not isinstance(size, int) or not isinstance(ts, int) or size < 0:
                raise ValueError("size and timestamp_ms must be non-negative integers")
            root = bytes.fromhex(data["root_hash"])
            if len(root) != 32:
                raise ValueError("root_hash must be 32 bytes of hex")
            return cls(size, root, ts, str(data["key_id"]),
                       base64.b64decode(data["signature"], validate=True))
        except KeyError as exc:
            raise ValueError(f"the tree head lacks {exc.args[0]!r}") from None
        except (TypeError, binascii.Error) as exc:
            raise ValueError(f"the tree head is malformed ({exc})") from None


def head_message(size: int, root: bytes, timestamp_ms: int) -> bytes:
    return _DOMAIN + canonical({"root_hash": root.hex(), "size": size, "timestamp_ms": timestamp_ms})


def key_id(public: Ed25519PublicKey) -> str:
    """A short public name of the key: the first 8 bytes of SHA-256 of its raw form, hex."""
    return hashlib.sha256(raw_public(public)).hexdigest()[:16]


def raw_public(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_text(public: Ed25519PublicKey) -> str:
    """The public key as people pass it around: base64 of the 32 raw bytes."""
    return base64.b64encode(raw_public(public)).decode()


class Signer:
    """Signs tree heads with the ledger's private key."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public = private.public_key()
        self.key_id = key_id(self.public)

    def sign(self, size: int, root: bytes, timestamp_ms: int) -> TreeHead:
        signature = self._private.sign(head_message(size, root, timestamp_ms))
        return TreeHead(size, root, timestamp_ms, self.key_id, signature)


def verify_head(head: TreeHead, public: Ed25519PublicKey) -> bool:
    try:
        public.verify(head.signature, head.message())
    except InvalidSignature:
        return False
    return True


def parse_public_key(text: str) -> Ed25519PublicKey:
    """A public key given as base64 (32 raw bytes), PEM, the admin API's JSON
    (``{"public_key": …}``), or the path of a file holding one. Raises ValueError saying what
    was expected."""
    candidate = text.strip()
    path = Path(candidate)
    with contextlib.suppress(OSError):
        if len(candidate) < 4096 and path.is_file():
            candidate = path.read_text(encoding="utf-8").strip()
    if candidate.startswith("{"):  # GET /admin/audit/public-key, saved as it came
        with contextlib.suppress(ValueError, AttributeError):
            candidate = str(json.loads(candidate).get("public_key", "")).strip()
    try:
        if candidate.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(candidate.encode())
            if not isinstance(key, Ed25519PublicKey):
                raise ValueError("not an Ed25519 key")
            return key
        raw = base64.b64decode(candidate, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, binascii.Error) as exc:
        if candidate == text.strip() and candidate.endswith((".pub", ".pem", ".json", ".txt", ".key")):
            raise ValueError(f"no such file: {candidate}") from None  # a path, mistyped
        raise ValueError(f"not an Ed25519 public key (expected base64 of 32 bytes, PEM, or a "
                         f"file holding one): {exc}") from None


def load_private_key(text: str, source: str) -> Ed25519PrivateKey:
    """A private key given as PEM (PKCS#8) or base64 of the 32-byte seed."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode(), password=None)
            if not isinstance(key, Ed25519PrivateKey):
                raise ValueError("not an Ed25519 key")
            return key
        return Ed25519PrivateKey.from_private_bytes(base64.b64decode(text, validate=True))
    except (ValueError, TypeError, binascii.Error) as exc:
        # Never echo the text: it is a secret.
        raise ConfigError(f"{source}: not an Ed25519 private key (PEM PKCS#8, or base64 of "
                          f"the 32-byte seed): {type(exc).__name__}") from None


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The key in ``path``, created (mode 0600) if absent. Two processes starting together
    agree: the file appears atomically with its content, and the loser reads the winner's."""
    try:
        return load_private_key(path.read_text(encoding="utf-8"), str(path))
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the ledger signing key ({exc.strerror})") from exc
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # fails if another process made it first
    except FileExistsError:
        return load_private_key(path.read_text(encoding="utf-8"), str(path))
    finally:
        tmp.unlink()
    return key
