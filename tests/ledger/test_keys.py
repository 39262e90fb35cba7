"""The ledger's keys: generated once with mode 0600, or supplied; never echoed."""

from __future__ import annotations

import base64
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fabrique.errors import ConfigError
from fabrique.ledger.service import Ledger
from fabrique.ledger.signing import load_or_create_key, public_key_text
from fabrique.store import Database

from ..conftest import make_config


def _db(tmp_path):
    return Database(f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}")  # never opened: keys only


def test_generated_keys_are_private_and_stable(tmp_path):
    config = make_config(tmp_path)
    first = Ledger(config, db=_db(tmp_path))
    first.load_keys()
    data = config.resolved_data_dir()
    for name in ("ledger_signing_key.pem", "ledger_master_key"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name
    again = Ledger(config, db=_db(tmp_path))
    again.load_keys()
    assert again.public_key() == first.public_key() and again.master == first.master


def test_two_processes_creating_the_key_at_once_agree(tmp_path):
    path = tmp_path / "k.pem"
    keys = [load_or_create_key(path) for _ in range(2)]
    raw = [k.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
           for k in keys]
    assert raw[0] == raw[1]


def test_supplied_keys_are_used(tmp_path):
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                 serialization.NoEncryption())
    master = base64.b64encode(bytes(range(32))).decode()
    config = make_config(tmp_path, ledger={"signing_key": base64.b64encode(seed).decode(),
                                           "master_key": master})
    led = Ledger(config, db=_db(tmp_path))
    led.load_keys()
    assert led.public_key()["public_key"] == public_key_text(private.public_key())
    assert led.master == bytes(range(32))
    assert not (config.resolved_data_dir() / "ledger_signing_key.pem").exists()


def test_a_bad_supplied_key_is_named_but_never_echoed(tmp_path):
    secret = "not-a-key-but-a-secret-value"
    led = Ledger(make_config(tmp_path, ledger={"signing_key": secret}), db=_db(tmp_path))
    with pytest.raises(ConfigError) as exc:
        led.load_keys()
    assert "ledger.signing_key" in exc.value.message and secret not in exc.value.message
