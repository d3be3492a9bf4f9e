"""The `syft-flwr` command, as a person runs it (a real subprocess)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import AGGREGATOR, DATASITES

CLI = [sys.executable, "-m", "syft_flwr.cli"]


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=180, cwd=cwd, check=False
    )


def test_bootstrap_then_run_on_mock_data(tiny_app: Path, tiny_data: list[Path]) -> None:
    datasites = [arg for email in DATASITES for arg in ("--datasite", email)]
    boot = _cli("bootstrap", str(tiny_app), "--aggregator", AGGREGATOR, *datasites)
    assert boot.returncode == 0, boot.stderr
    assert (tiny_app / "main.py").exists()

    again = _cli("bootstrap", str(tiny_app), "--aggregator", AGGREGATOR, *datasites)
    assert again.returncode == 1 and "--overwrite" in again.stderr

    mocks = [arg for path in tiny_data for arg in ("--mock", str(path))]
    run = _cli("run", str(tiny_app), *mocks, "--run-config", "num-server-rounds=2")
    assert run.returncode == 0, run.stderr
    assert "completed: 2 rounds," in run.stdout
    assert json.loads((tiny_app / "result.json").read_text())["count"] == 5


def test_run_reports_a_failing_datasite_and_exits_non_zero(tiny_app, tiny_data) -> None:
    datasites = [arg for email in DATASITES for arg in ("--datasite", email)]
    assert _cli("bootstrap", str(tiny_app), "--aggregator", AGGREGATOR, *datasites).returncode == 0
    (tiny_data[0] / "FAIL").touch()
    mocks = [arg for path in tiny_data for arg in ("--mock", str(path))]
    run = _cli("run", str(tiny_app), *mocks)
    assert run.returncode == 1
    assert "do1@openmined.org" in run.stderr and "told to fail" in run.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["run", "nowhere", "--mock", "x"],
        ["bootstrap", "nowhere", "--aggregator", AGGREGATOR, "--datasite", DATASITES[0]],
    ],
)
def test_bad_project_folder_is_a_clear_error(args: list[str]) -> None:
    proc = _cli(*args)
    assert proc.returncode != 0
    assert "error:" in proc.stderr and "Traceback" not in proc.stderr


def test_run_with_an_app_that_does_not_import_is_one_error_line(tiny_app, tiny_data) -> None:
    datasites = [arg for email in DATASITES for arg in ("--datasite", email)]
    assert _cli("bootstrap", str(tiny_app), "--aggregator", AGGREGATOR, *datasites).returncode == 0
    (tiny_app / "tiny_app" / "client_app.py").write_text("import no_such_module_xyz\n")
    mocks = [arg for path in tiny_data for arg in ("--mock", str(path))]
    run = _cli("run", str(tiny_app), *mocks)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, run.stderr
    assert "clientapp 'tiny_app.client_app:app'" in errors[0]
    assert "ModuleNotFoundError: No module named 'no_such_module_xyz'" in errors[0]


def test_bootstrap_help_keeps_the_table_name() -> None:
    shown = _cli("bootstrap", "--help")
    assert shown.returncode == 0, shown.stderr
    assert "[tool.syft_flwr]" in shown.stdout
    assert "\\[tool" not in shown.stdout
