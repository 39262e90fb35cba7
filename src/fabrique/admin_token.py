"""The admin token that protects ``/admin``: configured, from the environment, or generated.

Order: ``server.admin_token`` in the config, then ``$FABRIQUE_ADMIN_TOKEN``, then the
file ``<data_dir>/admin_token``, created on first start with mode 0600.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
from pathlib import Path

from fabrique.config import Config
from fabrique.errors import AuthenticationError, ConfigError

ENV = "FABRIQUE_ADMIN_TOKEN"


class AdminToken:
    """Holds only the token's hash; checks a presented token in constant time."""

    def __init__(self, token: str, source: str) -> None:
        if len(token.strip()) < 16:
            # An empty token would match "Authorization: Bearer" with nothing after it.
            raise ConfigError(f"the admin token from {source} is empty or shorter than 16 "
                              "characters; set a long random one (or delete the file to have "
                              "one generated)")
        self._digest = hashlib.sha256(token.strip().encode()).digest()
        self.source = source

    @classmethod
    def load(cls, config: Config) -> AdminToken:
        if config.server.admin_token is not None:
            return cls(config.server.admin_token.get_secret_value(), "config")
        if token := os.environ.get(ENV, "").strip():
            return cls(token, f"${ENV}")
        path = config.resolved_data_dir() / "admin_token"
        return cls(read_or_create(path), str(path))

    def check(self, authorization: str | None) -> None:
        scheme, _, token = (authorization or "").partition(" ")
        sent = hashlib.sha256(token.strip().encode("utf-8", "surrogateescape")).digest()
        if (scheme.lower() != "bearer" or not token.strip()
                or not hmac.compare_digest(sent, self._digest)):
            raise AuthenticationError("Invalid admin token: send 'Authorization: Bearer <token>' "
                                      "with the token from the admin_token file or "
                                      f"${ENV}.", code="invalid_admin_token")


def read_or_create(path: Path) -> str:
    """The token in ``path``; a new one (mode 0600) if the file does not exist.

    The token is written to a temporary file and linked into place, so that replicas
    starting together on one data directory never read a half-written (empty) file.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        token = "fabadm-" + secrets.token_urlsafe(32)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".admin_token.")  # mode 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(token + "\n")
            os.link(tmp, path)  # fails if another process got there first: keep theirs
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    return path.read_text(encoding="utf-8").strip()
