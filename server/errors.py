"""Domain errors: what a service raises on purpose. No HTTP in here; ``server.problems``
renders them once as RFC 9457 problem details."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every error a service raises on purpose. ``code`` is stable and public."""

    code = "ERROR"
    title = "Request failed"

    def __init__(self, detail: str | None = None, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        if code is not None:
            self.code = code
        self.extra = extra


class BadRequest(DomainError):
    code, title = "BAD_REQUEST", "Bad request"


class InvalidInput(DomainError):
    code, title = "VALIDATION_ERROR", "Invalid input"


class Unauthenticated(DomainError):
    code, title = "UNAUTHENTICATED", "Authentication required"


class PermissionDenied(DomainError):
    code, title = "FORBIDDEN", "Not allowed"


class NotFound(DomainError):
    code, title = "NOT_FOUND", "Not found"


class Conflict(DomainError):
    code, title = "CONFLICT", "Conflict"


class InvalidTransition(Conflict):
    code, title = "INVALID_TRANSITION", "This change is not allowed in the current state"


class ActivationLimitReached(Conflict):
    code, title = "ACTIVATION_LIMIT", "Every seat of this license is taken"


class DeactivationLimitReached(Conflict):
    code, title = "DEACTIVATION_LIMIT", "Too many deactivations for this license today"


class LicenseRefused(DomainError):
    """The license exists but cannot be used now (suspended, revoked, expired)."""

    code, title = "LICENSE_REFUSED", "The license cannot be used"


class ProductMismatch(DomainError):
    code, title = "PRODUCT_MISMATCH", "The license is for another product"


class RateLimited(DomainError):
    code, title = "RATE_LIMITED", "Too many requests"

    def __init__(self, detail: str | None = None, *, retry_after: int, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.retry_after = max(1, int(retry_after))


class Unavailable(DomainError):
    code, title = "SERVICE_UNAVAILABLE", "Service unavailable"

    def __init__(self, detail: str | None = None, *, retry_after: int = 5, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.retry_after = retry_after


class NoSigningKey(Unavailable):
    code, title = "NO_SIGNING_KEY", "No active signing key"
