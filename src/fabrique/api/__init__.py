"""The HTTP surface: OpenAI-compatible routes, the admin API, health."""

from fabrique.api.app import build_app

__all__ = ["build_app"]
