"""Errors a user can act on. Every edge turns them into one clear message:
an HTTP 4xx with a JSON body, or a CLI line and a non-zero exit code."""

from __future__ import annotations

from typing import Any


class UserError(Exception):
    code = "bad_request"
    http_status = 400
    exit_code = 2

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidInput(UserError):
    code = "invalid_input"
    http_status = 422


class NotFound(UserError):
    code = "not_found"
    http_status = 404
    exit_code = 3


class Conflict(UserError):
    code = "conflict"
    http_status = 409


class Unauthorized(UserError):
    code = "unauthorized"
    http_status = 401


class Forbidden(UserError):
    code = "forbidden"
    http_status = 403


class RateLimited(UserError):
    code = "rate_limited"
    http_status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, details={"retry_after": retry_after})
        self.retry_after = retry_after


class UnsupportedMediaType(UserError):
    code = "unsupported_media_type"
    http_status = 415


class PayloadTooLarge(UserError):
    code = "payload_too_large"
    http_status = 413
