"""User-facing errors.

Every problem a user can cause (bad checkpoint, bad config, unknown class, bad data path)
is raised as an :class:`LRFError` whose message is one line naming the problem and the fix.
The console scripts print that line and exit non-zero instead of showing a traceback.
"""

from __future__ import annotations

import functools
import sys
from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable[..., int | None])


class LRFError(Exception):
    """An error caused by the user's input; its message is one actionable line."""


class ConfigError(LRFError, ValueError):
    """A configuration field has an invalid value."""


def first_line(e: BaseException) -> str:
    """The gist of a library's exception for a one-line message: its first line, or its type."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def cli_errors(main: F) -> F:
    """Wrap a console-script entry point so that LRFError prints one line and exits 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except LRFError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]
