"""One error base: every exception the toolkit defines derives from SyftFlwrError, keeps the
built-in base callers catch, and maps to a known exit code."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import syft_flwr
from syft_flwr.errors import (
    EXIT_FAILED,
    EXIT_PARTIAL,
    EXIT_USAGE,
    SyftFlwrError,
    exit_code_of,
)


def _modules() -> list[str]:
    names = ["syft_flwr"]
    names += [info.name for info in pkgutil.walk_packages(syft_flwr.__path__, "syft_flwr.")]
    return sorted(names)


def _exception_classes() -> dict[str, type[BaseException]]:
    """Every exception class defined (not merely imported) in a checked module."""
    found: dict[str, type[BaseException]] = {}
    for name in _modules():
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseException) and cls.__module__ == name:
                found[f"{name}.{cls.__qualname__}"] = cls
    return found


EXCEPTIONS = _exception_classes()


def test_the_walk_finds_the_package_errors() -> None:
    """Guards the test below against passing on an empty walk."""
    names = {cls.__name__ for cls in EXCEPTIONS.values()}
    assert {
        "SyftFlwrError",
        "UsageError",
        "MessageFileError",
        "AppLoadError",
        "DatasetPathError",
        "SimulationError",
        "SignatureError",
        "PublicKeysNotFoundError",
        "PublicKeysInvalidError",
        "DecryptionError",
    } <= names


@pytest.mark.parametrize("qualname", sorted(EXCEPTIONS))
def test_every_error_derives_from_syft_flwr_error(qualname: str) -> None:
    cls = EXCEPTIONS[qualname]
    assert issubclass(cls, SyftFlwrError), (
        f"{qualname} must derive from syft_flwr.errors.SyftFlwrError (keep its built-in base "
        "too, e.g. class MyError(SyftFlwrError, ValueError))"
    )
    assert cls.exit_code in (EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL), qualname


@pytest.mark.parametrize(
    ("qualname", "builtin", "code"),
    [
        ("syft_flwr.transport.errors.MessageFileError", ValueError, EXIT_FAILED),
        ("syft_flwr.apps.AppLoadError", ImportError, EXIT_USAGE),
        ("syft_flwr.utils.DatasetPathError", RuntimeError, EXIT_USAGE),
        ("syft_flwr.simulation.SimulationError", RuntimeError, EXIT_FAILED),
        ("syft_flwr.demo.DemoError", RuntimeError, EXIT_FAILED),
        ("syft_flwr.crypto.errors.SignatureError", ValueError, EXIT_FAILED),
        ("syft_flwr.crypto.errors.PublicKeysNotFoundError", FileNotFoundError, EXIT_USAGE),
        ("syft_flwr.crypto.errors.PublicKeysInvalidError", ValueError, EXIT_USAGE),
        ("syft_flwr.crypto.errors.PrivateKeysNotFoundError", FileNotFoundError, EXIT_USAGE),
        ("syft_flwr.crypto.errors.DecryptionError", ValueError, EXIT_FAILED),
        ("syft_flwr.crypto.errors.MessageAuthError", ValueError, EXIT_FAILED),
    ],
)
def test_errors_keep_their_builtin_base_and_exit_code(
    qualname: str, builtin: type[BaseException], code: int
) -> None:
    cls = EXCEPTIONS[qualname]
    assert issubclass(cls, builtin)  # existing `except ValueError:` etc. still catch it
    assert cls.exit_code == code


def test_exit_code_of() -> None:
    from syft_flwr.apps import AppLoadError
    from syft_flwr.simulation import SimulationError

    assert exit_code_of(SimulationError("run failed", failures={})) == EXIT_FAILED
    assert exit_code_of(AppLoadError("no module")) == EXIT_USAGE
    assert exit_code_of(ValueError("bad input")) == EXIT_USAGE
    assert exit_code_of(FileNotFoundError("no folder")) == EXIT_USAGE
    assert exit_code_of(RuntimeError("boom")) == EXIT_FAILED
