"""zsindex's HTTP service: ``create_app`` builds the FastAPI app; ``zsindex serve`` runs it with uvicorn."""

from __future__ import annotations

from .app import create_app

__all__ = ["create_app"]
