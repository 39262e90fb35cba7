"""Every error Fabrique raises on purpose, and how it looks to an OpenAI client.

    FabriqueError                      500 internal_error
    ├── RequestError                   400 invalid_request_error
    │   ├── InvalidJSON                400 invalid_json
    │   ├── MissingField               400 missing_required_parameter
    │   ├── InvalidField               400 invalid_value
    │   ├── BodyTooLarge               413 request_too_large
    │   └── MethodNotAllowed           405 method_not_allowed
    ├── AuthenticationError            401 invalid_api_key
    ├── PermissionDenied               403 permission_denied
    │   └── ResidencyRefused           403 residency_policy
    ├── NotFound                       404 not_found
    │   └── ModelNotFound              404 model_not_found
    ├── RateLimited                    429 rate_limit_exceeded
    │   └── BudgetExceeded             429 budget_exceeded
    ├── UpstreamError                  502 upstream_error
    │   ├── UpstreamRejected           4xx relayed, with a clean message
    │   ├── UpstreamUnavailable        503 upstream_unavailable
    │   │   └── NoHealthyDeployment    503 no_healthy_deployment
    │   └── UpstreamTimeout            504 upstream_timeout
    ├── ConfigError                    (CLI only) a file, a field path and what was expected
    └── StoreError                     503 store_unavailable
        └── LedgerUnavailable          503 ledger_unavailable

One handler (``fabrique.api.errors``) renders each as
``{"error": {"message", "type", "param", "code"}}`` with ``status``.
"""

from __future__ import annotations

from typing import ClassVar


class FabriqueError(Exception):
    """Base of every deliberate Fabrique error."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    code: ClassVar[str | None] = "internal_error"

    def __init__(self, message: str, *, param: str | None = None, status: int | None = None,
                 code: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.retry_after = retry_after
        if status is not None:
            self.status = status  # type: ignore[misc]
        if code is not None:
            self.code = code  # type: ignore[misc]

    def to_dict(self) -> dict[str, object]:
        return {"error": {"message": self.message, "type": self.type,
                          "param": self.param, "code": self.code}}


class RequestError(FabriqueError):
    """The request itself is wrong; retrying it unchanged will fail again."""

    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class InvalidJSON(RequestError):
    """The body is not a JSON object."""

    code = "invalid_json"


class MissingField(RequestError):
    """A required field is absent."""

    code = "missing_required_parameter"


class InvalidField(RequestError):
    """A field has the wrong type or value."""

    code = "invalid_value"


class BodyTooLarge(RequestError):
    """The body is larger than ``server.max_body_bytes``."""

    status = 413
    code = "request_too_large"


class MethodNotAllowed(RequestError):
    """The path exists but not with this HTTP method."""

    status = 405
    code = "method_not_allowed"


class AuthenticationError(FabriqueError):
    """Missing, unknown, expired or revoked API key (or admin token)."""

    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(FabriqueError):
    """The key is valid but may not do this."""

    status = 403
    type = "permission_error"
    code = "permission_denied"


class ResidencyRefused(PermissionDenied):
    """The tenant's residency policy lets no deployment of the model receive this data."""

    code = "residency_policy"


class NotFound(FabriqueError):
    """No such route or object."""

    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFound(NotFound):
    """No deployment serves the requested model name."""

    code = "model_not_found"


class RateLimited(FabriqueError):
    """Too many requests; ``retry_after`` says when to come back."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class BudgetExceeded(RateLimited):
    """The worst case of the request does not fit in a tenant's, key's or agent's budget."""

    type = "insufficient_quota"
    code = "budget_exceeded"
    retryable = False  # until the period ends: the SDKs' automatic retries would only waste


class UpstreamError(FabriqueError):
    """An upstream answered badly (a 5xx, a malformed body)."""

    status = 502
    type = "api_error"
    code = "upstream_error"


class UpstreamRejected(UpstreamError):
    """An upstream refused the request with a 4xx that the client must see (e.g. context too long)."""

    type = "invalid_request_error"
    code = "upstream_rejected"


class UpstreamUnavailable(UpstreamError):
    """An upstream could not be reached, or is overloaded."""

    status = 503
    code = "upstream_unavailable"


class NoHealthyDeployment(UpstreamUnavailable):
    """Every deployment for the model is open-circuited or failed."""

    code = "no_healthy_deployment"


class UpstreamTimeout(UpstreamError):
    """An upstream did not answer within its connect, first-token or total timeout."""

    status = 504
    code = "upstream_timeout"


class StoreError(FabriqueError):
    """The database could not be reached."""

    status = 503
    code = "store_unavailable"


class LedgerUnavailable(StoreError):
    """The audit record of a request could not be written, and its policy fails closed."""

    code = "ledger_unavailable"


class ConfigError(FabriqueError):
    """A configuration file is invalid; the message names the file and field."""

    code = "config_error"
