import sys
from pathlib import Path

from syft_flwr.apps import load_apps
from tests.support import copy_app


def test_two_copies_of_one_app_load_their_own_code(tiny_app: Path, tmp_path: Path) -> None:
    other = copy_app(tiny_app, tmp_path / "other")
    (other / "tiny_app" / "server_app.py").write_text(
        (other / "tiny_app" / "server_app.py").read_text() + "\nMARK = 'other'\n"
    )
    first, second = load_apps(tiny_app), load_apps(other)
    first_module = sys.modules.get("tiny_app.server_app")
    assert first_module is None  # nothing of either project stays registered
    assert first.server_app is not second.server_app
    assert tiny_app / "tiny_app" in _defining_dirs(first)
    assert other / "tiny_app" in _defining_dirs(second)
    assert str(tiny_app) not in sys.path


def _defining_dirs(apps) -> set[Path]:
    fns = [apps.server_app._main, apps.client_app]
    return {Path(fn.__code__.co_filename).parent for fn in fns if hasattr(fn, "__code__")}
