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
