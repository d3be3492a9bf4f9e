"""The three notebooks, run together as a person would: do1, do2 and ds at the same time.

Each notebook runs in its own real ipykernel (the .venv's Python), in its own thread, on one
network folder in tmp_path. The data scientist's summary.json must equal pandas on the union
of both data owners' private rows. Set SYFT_FLWR_KEEP_EXECUTED_NOTEBOOKS=<folder> to keep
the executed notebooks (with their outputs) for reading.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import nbclient
import nbformat
import pandas as pd
import psutil
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient.exceptions import CellExecutionError

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
DATA = REPO / "datasets" / "pima-indians-diabetes-database"
APP = "fed-analytics-diabetes"
KERNEL = "syft-flwr-venv"
ROOT_ENV = "SYFT_FLWR_NOTEBOOK_ROOT"
KEEP_ENV = "SYFT_FLWR_KEEP_EXECUTED_NOTEBOOKS"  # a folder: write the executed notebooks there
TOTAL_TIMEOUT = 240.0  # all three notebooks together
CELL_TIMEOUT = 220  # one cell (the DOs' run_private cell waits for the whole aggregation)
WAIT_TIMEOUT = "150"  # the notebooks' own waits for another party
FEATURES = ("Glucose", "BMI", "Age")


@dataclass
class NotebookRun:
    name: str
    notebook: object = None
    error: str | None = None
    failed_at: float | None = None
    finished: bool = False


def _kernel_specs(tmp_path: Path) -> KernelSpecManager:
    """A kernelspec that starts ipykernel with this interpreter (the .venv's python)."""
    folder = tmp_path / "jupyter" / "kernels" / KERNEL
    folder.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "syft_flwr .venv",
        "language": "python",
    }
    (folder / "kernel.json").write_text(json.dumps(spec))
    return KernelSpecManager(kernel_dirs=[str(folder.parent)])


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _progress(notebook) -> str:
    """The cell a notebook was running (or failed in), with its source and output so far."""
    cells = list(getattr(notebook, "cells", []))
    code = [(i, c) for i, c in enumerate(cells) if c.cell_type == "code"]
    if not code:
        return "(not started)"
    started = [(i, c) for i, c in code if c.get("execution_count")]
    if not started:
        return "(no cell started)"
    i, cell = started[-1]  # a cell gets its execution count when it starts
    text = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            text.append(out.get("text", ""))
        elif out.get("output_type") == "error":
            text.append(f"{out['ename']}: {out['evalue']}")
        elif "text/plain" in out.get("data", {}):
            text.append(out["data"]["text/plain"])
    tail = _strip_ansi("".join(text))[-3000:]
    return f"cell {i}:\n{cell.source}\n----- output (tail) -----\n{tail}"


def _execute(run: NotebookRun, workdir: Path, env: dict[str, str], specs: KernelSpecManager):
    try:
        notebook = nbformat.read(NOTEBOOKS / f"{run.name}.ipynb", as_version=4)
        run.notebook = notebook
        client = nbclient.NotebookClient(
            notebook,
            km=AsyncKernelManager(kernel_name=KERNEL, kernel_spec_manager=specs),
            timeout=CELL_TIMEOUT,
            interrupt_on_timeout=True,  # a waiting cell gets KeyboardInterrupt, and cleans up
            resources={"metadata": {"path": str(workdir)}},
        )
        client.execute(env=env)
    except CellExecutionError as exc:
        run.error = _strip_ansi(str(exc))
        run.failed_at = time.monotonic()
    except BaseException:  # noqa: BLE001 - reported by the test thread
        run.error = traceback.format_exc()
        run.failed_at = time.monotonic()
    finally:
        keep = os.environ.get(KEEP_ENV)  # to read what a person would see
        if keep and run.notebook is not None:
            Path(keep).mkdir(parents=True, exist_ok=True)
            nbformat.write(run.notebook, Path(keep) / f"{run.name}.ipynb")
        run.finished = True


def _stop_leftovers(marker: str) -> list[int]:
    """Kill every process this test started: they carry ROOT_ENV=marker in their environment."""
    killed = []
    me = os.getpid()
    for proc in psutil.process_iter(["pid"]):
        if proc.pid == me:
            continue
        try:
            if proc.environ().get(ROOT_ENV) == marker:
                proc.kill()
                killed.append(proc.pid)
        except (psutil.Error, OSError):
            continue
    return killed


def _private_union() -> pd.DataFrame:
    return pd.concat(
        [
            pd.read_csv(path)
            for i in (1, 2)
            for path in sorted((DATA / f"do{i}" / "private").glob("*.csv"))
        ],
        ignore_index=True,
    )


@pytest.mark.xdist_group("notebooks")
@pytest.mark.timeout(TOTAL_TIMEOUT + 60)
def test_three_notebooks_run_the_federation_end_to_end(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    app_pyproject = (REPO / APP / "pyproject.toml").read_bytes()
    env = {
        **os.environ,
        ROOT_ENV: str(root),
        "SYFT_FLWR_REPO": str(REPO),
        "SYFT_FLWR_NOTEBOOK_TIMEOUT": WAIT_TIMEOUT,
        "SYFT_FLWR_IDLE_TIMEOUT": "150",  # a DO's job stops on its own if nothing comes
        "SYFT_FLWR_MSG_TIMEOUT": "90",
        "FLWR_TELEMETRY_ENABLED": "0",
        "MPLBACKEND": "Agg",
    }
    env.pop("JUPYTER_PLATFORM_DIRS", None)
    specs = _kernel_specs(tmp_path)
    runs = {name: NotebookRun(name) for name in ("do1", "do2", "ds")}
    threads = [
        threading.Thread(
            target=_execute, args=(run, root, env, specs), name=f"nb-{run.name}", daemon=True
        )
        for run in runs.values()
    ]
    started = time.monotonic()
    try:
        for thread in threads:
            thread.start()
        # Until all finish, one fails (the others would only wait for it), or time is up.
        while time.monotonic() - started < TOTAL_TIMEOUT:
            if all(r.finished for r in runs.values()) or any(r.error for r in runs.values()):
                break
            time.sleep(0.5)
        unfinished = [r.name for r in runs.values() if not r.finished]
    finally:
        _stop_leftovers(str(root))
        for thread in threads:
            thread.join(timeout=15)

    failed = sorted((r for r in runs.values() if r.error), key=lambda r: r.failed_at or 0.0)
    if failed or unfinished:
        parts = []
        if failed:  # the first to fail is the cause; the others were stopped because of it
            first = failed[0]
            parts.append(f"===== {first.name}.ipynb failed =====\n{first.error}")
        else:
            parts.append(f"notebooks still running after {TOTAL_TIMEOUT:g} s: {unfinished}")
        for run in runs.values():
            if not failed or run is not failed[0]:
                parts.append(f"===== {run.name}.ipynb was at =====\n{_progress(run.notebook)}")
        pytest.fail("\n\n".join(parts), pytrace=False)

    # The data scientist's figures and summary, from the real run on private data.
    project = root / "ds_project" / APP
    figures = project / "figures"
    for feature in FEATURES:
        png = figures / f"{feature}_histogram.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
        mock_png = root / "ds_outputs" / "mock_figures" / png.name
        assert mock_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", mock_png
    summary = json.loads((figures / "summary.json").read_text())
    union = _private_union()
    assert summary["datasites"] == 2
    assert summary["rows"] == {str(o): int((union["y"] == o).sum()) for o in (0, 1)}
    for feature, entry in summary["features"].items():
        for outcome, totals in entry["totals"].items():
            column = union.loc[union["y"] == int(outcome), feature]
            assert totals["count"] == int(column.count()), (feature, outcome)
            assert totals["zeros"] == int((column == 0).sum()), (feature, outcome)
            assert totals["mean"] == pytest.approx(float(column.mean()), rel=0, abs=1e-9)
    for feature in FEATURES:
        entry = summary["features"][feature]
        edges = entry["bin_edges"]
        for outcome, counts in entry["counts"].items():
            values = union.loc[union["y"] == int(outcome), feature]
            # numpy.histogram semantics: [a, b) except the last bin, which is closed
            inside = values[(values >= edges[0]) & (values <= edges[-1])]
            by_bin = [
                int(((inside >= a) & (inside < b)).sum())
                for a, b in zip(edges[:-1], edges[1:], strict=True)
            ]
            by_bin[-1] += int((inside == edges[-1]).sum())
            assert counts == by_bin, (feature, outcome)

    # The simulation ran on the mock rows only: 100 per datasite.
    mock_summary = json.loads((root / "ds_outputs" / "mock_figures" / "summary.json").read_text())
    assert sum(mock_summary["rows"].values()) == 200

    # Each data owner's audit log records the whole story, and its job was shared.
    network = root / "local_syftbox_network"
    for do in ("do1@openmined.org", "do2@openmined.org"):
        audit = network / "private" / do / "rds" / "audit.jsonl"
        events = [json.loads(line)["event"] for line in audit.read_text().splitlines()]
        for event in ("dataset_create", "submission_seen", "approve", "run_start", "run_end"):
            assert event in events, (do, events)
        assert events[-1] == "share", (do, events)

    # The notebooks worked on a copy: the repository's app is untouched.
    assert (REPO / APP / "pyproject.toml").read_bytes() == app_pyproject
