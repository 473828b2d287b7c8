"""Errors of the generative-design pipeline."""

from __future__ import annotations

from crystalspace.errors import UserError


class GenError(UserError, ValueError):
    """Bad input to the generator pipeline (missing dataset or model, bad option)."""
