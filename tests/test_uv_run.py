"""``uv run main.py --active``, typed as the README says, in an activated environment that has
the toolkit: bootstrap's ``[tool.uv] managed = false`` makes uv run main.py there, without
building another environment or downloading anything."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.faults.helpers import TINY_APP, federation, prepare_project, tiny_data

UV = Path(sys.executable).parent / "uv"


def test_the_aggregator_runs_through_uv_run(tmp_path: Path) -> None:
    assert UV.exists() or shutil.which("uv"), "uv is in the dev extra: make setup installs it"
    uv = str(UV) if UV.exists() else str(shutil.which("uv"))
    with federation(tmp_path, TINY_APP, tiny_data(tmp_path)) as fed:
        for owner in fed.owners.values():
            owner.start()
        env = fed.env(
            VIRTUAL_ENV=str(Path(sys.executable).parents[1]),
            UV_OFFLINE="1",
            UV_CACHE_DIR=str(tmp_path / "uv-cache"),
        )
        env.pop("UV_PROJECT_ENVIRONMENT", None)
        done = subprocess.run(
            [uv, "run", "main.py", "--active", "--timeout", "60"],
            cwd=fed.project,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        for owner in fed.owners.values():
            owner.run.wait(timeout=60)

        assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        assert "run completed" in done.stdout
        result = json.loads((fed.project / "result.json").read_text())
        assert result["count"] == 5 and result["datasites"] == 2  # 3 + 2 private values
        assert result["mean"] == (1 + 2 + 3 + 10 + 20) / 5
        assert not (fed.project / ".venv").exists()  # uv used the toolkit's environment


def test_main_py_without_the_toolkit_says_what_to_do(tmp_path: Path) -> None:
    """An interpreter without syft_flwr (here: no site-packages) gets one line, not a trace."""
    project = prepare_project(TINY_APP, tmp_path / "project")
    done = subprocess.run(
        [sys.executable, "-S", "main.py", "--active"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: syft_flwr is not installed for ")
    assert "activate that environment" in done.stderr
    assert "Traceback" not in done.stderr
