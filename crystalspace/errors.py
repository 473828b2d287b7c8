"""The one base class for errors caused by user input, and the CLI decorator that reports them.

Every pipeline raises a subclass of :class:`UserError` for bad input (unknown element or model
name, malformed file, a lake of another config, ...). The command line prints such errors as one
line and exits with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class UserError(Exception):
    """Bad input from the user: reported as one line, never as a traceback."""


def user_errors(fn: F) -> F:
    """CLI decorator: print a :class:`UserError` (or a DuckDB error) as one line and exit 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import typer

        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise typer.Exit(2) from None
        except Exception as exc:
            duckdb = sys.modules.get("duckdb")  # only a loaded duckdb can have raised its own error
            if duckdb is not None and isinstance(exc, duckdb.Error):
                print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
                raise typer.Exit(2) from None
            raise

    return wrapper  # type: ignore[return-value]


def run_job(main: Callable[[], int | None]) -> int:
    """Run a job entrypoint's ``main``: a :class:`UserError` becomes one ``error:`` line and exit
    status 2, as on the command line; anything else keeps its traceback."""
    try:
        return main() or 0
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
