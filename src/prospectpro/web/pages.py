"""The web pages (server-rendered)."""

from __future__ import annotations

from fastapi import FastAPI


def mount(app: FastAPI) -> None:
    """Add the page routes and /static to the app."""
