"""The toolkit's errors: one base class, and the exit code each kind maps to.

Every error the toolkit raises on purpose derives from :class:`SyftFlwrError`, so a caller can
catch them all at once, and the CLI and ``main.py`` turn one into its exit code and a
one-line message. Each subclass also keeps the built-in base it had (``ValueError``,
``PermissionError``, ...), so ``except ValueError`` still catches a bad input.
"""

from __future__ import annotations

#: the party's part fully succeeded
EXIT_OK = 0
#: it failed (the app raised, the run could not start or finish)
EXIT_FAILED = 1
#: bad usage: a wrong argument, a missing identity or data folder
EXIT_USAGE = 2
#: the run finished, but some datasite failed or did not answer
EXIT_PARTIAL = 3


class SyftFlwrError(Exception):
    """Base of every error the toolkit raises on purpose; ``exit_code`` is what a command
    that ends on it returns."""

    exit_code: int = EXIT_FAILED


class UsageError(SyftFlwrError, ValueError):
    """The caller asked for something that cannot be done as asked (exit code 2)."""

    exit_code = EXIT_USAGE


def exit_code_of(exc: BaseException) -> int:
    """The exit code a command returns when it ends on ``exc``."""
    if isinstance(exc, SyftFlwrError):
        return exc.exit_code
    if isinstance(exc, ValueError | OSError):
        return EXIT_USAGE
    return EXIT_FAILED
