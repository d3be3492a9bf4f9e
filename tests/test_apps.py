import sys
from pathlib import Path

import pytest

from syft_flwr.apps import AppLoadError, load_apps, load_client_app, load_server_app, release
from tests.support import copy_app


@pytest.fixture(autouse=True)
def _released(tiny_app: Path, tmp_path: Path):
    yield
    release(tiny_app)
    release(tmp_path / "other")


def test_two_copies_of_one_app_load_their_own_code(tiny_app: Path, tmp_path: Path) -> None:
    other = copy_app(tiny_app, tmp_path / "other")
    (other / "tiny_app" / "server_app.py").write_text(
        (other / "tiny_app" / "server_app.py").read_text() + "\nMARK = 'other'\n"
    )
    first, second = load_apps(tiny_app), load_apps(other)
    assert first.server_app is not second.server_app
    assert tiny_app / "tiny_app" in _defining_dirs(first)
    assert other / "tiny_app" in _defining_dirs(second)
    # the last project loaded is the importable one; the first is off the import path
    assert sys.modules["tiny_app.server_app"].MARK == "other"
    assert str(tiny_app) not in sys.path and sys.path[0] == str(other)
    release(other)
    assert "tiny_app" not in sys.modules and str(other) not in sys.path


def test_an_app_imports_its_own_package_while_it_runs(tiny_app: Path) -> None:
    """A function of the app that imports the app's own modules when called (as a
    syft-flwr 0.5 ``client_fn`` does) works after loading, and sees the loaded modules."""
    (tiny_app / "tiny_app" / "late.py").write_text(
        "def own_module():\n    import tiny_app.client_app as m\n    return m\n"
    )
    apps = load_apps(tiny_app)
    import importlib

    late = importlib.import_module("tiny_app.late")
    assert late.own_module().app is apps.client_app  # the very module loaded, not a copy
    apps_again = load_apps(tiny_app)  # a second run reloads the (edited) code afresh
    assert apps_again.client_app is not apps.client_app
    assert sys.modules["tiny_app.client_app"].app is apps_again.client_app


def _defining_dirs(apps) -> set[Path]:
    fns = [apps.server_app._main, apps.client_app]
    return {Path(fn.__code__.co_filename).parent for fn in fns if hasattr(fn, "__code__")}


@pytest.mark.parametrize(
    ("kind", "file", "code", "cause"),
    [
        ("serverapp", "server_app.py", "def broken(:\n", "SyntaxError"),
        ("clientapp", "client_app.py", "import no_such_module_xyz\n", "ModuleNotFoundError"),
        ("clientapp", "client_app.py", "app = None\ndel app\n", "AttributeError"),
    ],
)
def test_an_app_that_cannot_be_loaded_is_one_clear_error(
    tiny_app: Path, kind: str, file: str, code: str, cause: str
) -> None:
    (tiny_app / "tiny_app" / file).write_text(code)
    before = list(sys.path)
    with pytest.raises(AppLoadError) as info:
        load_apps(tiny_app)
    message = str(info.value)
    assert "\n" not in message
    ref = f"tiny_app.{file.removesuffix('.py')}:app"
    assert f"could not load the {kind} {ref!r}" in message
    assert str(tiny_app / "pyproject.toml") in message and f"{cause}: " in message
    assert isinstance(info.value, ImportError)  # callers catching ImportError still do
    assert sys.path == before and "tiny_app" not in sys.modules


def test_each_party_loads_only_its_own_component(tiny_app: Path, tmp_path: Path) -> None:
    """A data owner's job runs none of the ServerApp's module code, and the other way round."""
    loaded = tmp_path / "loaded.txt"
    for kind, file in (("server", "server_app.py"), ("client", "client_app.py")):
        module = tiny_app / "tiny_app" / file
        record = f"open({str(loaded)!r}, 'a').write({kind!r} + ' ')\n"
        module.write_text(record + module.read_text())

    def imported() -> list[str]:
        return loaded.read_text().split() if loaded.exists() else []

    client_app = load_client_app(tiny_app)
    assert imported() == ["client"]
    server_app = load_server_app(tiny_app)
    assert imported() == ["client", "server"]
    both = load_apps(tiny_app)
    assert sorted(imported()[2:]) == ["client", "server"]
    assert type(client_app) is type(both.client_app)
    assert type(server_app) is type(both.server_app)
    release(tiny_app)
    assert "tiny_app" not in sys.modules and str(tiny_app) not in sys.path
