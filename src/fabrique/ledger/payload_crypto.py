"""Payload secrets: the master key, each tenant's HMAC secret, each subject's AES-GCM key.

Why these three: a plain hash of a low-entropy value (a French NIR has about 10^13
possible values) is reversed by trying them all, so ``hash`` payloads are HMACs under a
secret per tenant (derived from the master key with HKDF, so nothing more is stored).
``encrypted`` payloads use AES-256-GCM under a random key per data subject; that key is
stored wrapped by the master key, so the database alone reads nothing, and erasing a
subject is deleting one row (crypto-shredding): the ciphertext stays, its hash stays in
the tree, and neither can be read again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fabrique.errors import ConfigError

_NONCE = 12


class PayloadUnreadable(Exception):
    """The payload's key was erased, or the ciphertext does not match it."""


def parse_master_key(text: str, source: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except binascii.Error:
        key = b""
    if len(key) != 32:
        # Never echo the value: it is a secret.
        raise ConfigError(f"{source}: the ledger master key must be base64 of 32 bytes")
    return key


def load_or_create_master_key(path: Path) -> bytes:
    """32 random bytes kept in ``path`` (0600), created on first use; two processes
    starting together read the same one."""
    try:
        return parse_master_key(path.read_text(encoding="ascii"), str(path))
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the ledger master key ({exc.strerror})") from exc
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        os.write(fd, base64.b64encode(os.urandom(32)) + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return parse_master_key(path.read_text(encoding="ascii"), str(path))


def tenant_secret(master: bytes, tenant: str) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt=None,
                info=b"fabrique-ledger-hmac/" + tenant.encode()).derive(master)


def keyed_hash(secret: bytes, data: bytes) -> str:
    return hmac.new(secret, data, hashlib.sha256).hexdigest()


def subject_ref(secret: bytes, subject: str) -> str:
    """What the ledger stores of a subject id: its HMAC, never the id (often personal)."""
    return keyed_hash(secret, b"subject:" + subject.encode())


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def wrap(master: bytes, key: bytes, tenant: str, ref: str) -> bytes:
    nonce = os.urandom(_NONCE)
    return nonce + AESGCM(master).encrypt(nonce, key, f"{tenant}\n{ref}".encode())


def unwrap(master: bytes, wrapped: bytes, tenant: str, ref: str) -> bytes:
    try:
        return AESGCM(master).decrypt(wrapped[:_NONCE], wrapped[_NONCE:], f"{tenant}\n{ref}".encode())
    except InvalidTag as exc:
        raise PayloadUnreadable("the subject key does not open with this master key") from exc


def encrypt(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(_NONCE)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def decrypt(key: bytes, blob: bytes, aad: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(blob[:_NONCE], blob[_NONCE:], aad)
    except InvalidTag as exc:
        raise PayloadUnreadable("the payload does not open with its subject's key") from exc
