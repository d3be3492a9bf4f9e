"""`syft-flwr demo` (what `make demo` runs), end to end in a real subprocess."""

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from syft_flwr import demo
from syft_flwr.monitor.runs import list_runs
from syft_flwr.network import Network
from tests.support import DATASITES, REPO

DATA = REPO / "datasets" / "pima-indians-diabetes-database"
TABLES = ("train.csv", "test.csv")
FAILED = "DEMO FAILED: "


def _demo(folder: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "syft_flwr.cli", "demo", "--folder", str(folder), *extra],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _private_union() -> pd.DataFrame:
    return pd.concat(
        pd.read_csv(DATA / f"do{i}" / "private" / f"{split}.csv")
        for i in (1, 2)
        for split in ("train", "test")
    )


def _table(stdout: str) -> dict[str, str]:
    """The summary table's ``name: value`` lines, after the "Summary" header."""
    lines = stdout[stdout.index("\nSummary") :].splitlines()[2:]
    rows = (line.strip().split(":", 1) for line in lines if line.startswith("  "))
    return {key: value.strip() for key, value in rows}


def _expect_table(stdout: str, datasites: list[str], rows: int, rounds: int) -> None:
    table = _table(stdout)
    assert table["datasites"].startswith(", ".join(datasites) + f" ({len(datasites)})")
    assert table["rows contributed"].split()[0] == str(rows)
    assert table["rounds"] == str(rounds)


def test_demo_runs_the_whole_workflow_on_private_data(tmp_path: Path) -> None:
    proc = _demo(tmp_path / "demo")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "[7/7]" in proc.stdout and "Summary" in proc.stdout
    assert (tmp_path / "demo" / demo.MARKER).is_file()
    figures = tmp_path / "demo" / "ds_project" / "fed-analytics-diabetes" / "figures"
    assert str(figures) in proc.stdout
    for feature in ("Glucose", "BMI", "Age"):
        assert (figures / f"{feature}_histogram.png").stat().st_size > 10_000

    summary = json.loads((figures / "summary.json").read_text())
    union = _private_union()
    assert summary["datasites"] == 2
    for outcome in (0, 1):
        rows = union[union["y"] == outcome]
        totals = summary["features"]["Glucose"]["totals"][str(outcome)]
        assert totals["count"] == len(rows)
        assert totals["mean"] == pytest.approx(rows["Glucose"].mean(), rel=1e-12)

    # the table shows what the run reported
    _expect_table(proc.stdout, summary["answered"], sum(summary["rows"].values()), 1)
    assert summary["rounds"] == 1 and sum(summary["rows"].values()) == len(union)
    for i, email in enumerate(summary["answered"], start=1):  # each data owner's own rows
        mine = sum(len(pd.read_csv(DATA / f"do{i}" / "private" / n)) for n in TABLES)
        assert summary["rows_by_datasite"][email] == mine
        assert f"{email}: {mine}" in _table(proc.stdout)["rows contributed"]

    # the data owner's review lists the files with sizes and shows the entrypoint
    review = proc.stdout[proc.stdout.index("[5/7]") : proc.stdout.index("[6/7]")]
    assert "pyproject.toml" in review and re.search(r"\d(\.\d)? k?B  main\.py\n", review)
    assert "more lines" not in review  # the whole generated main.py is shown
    assert "from syft_flwr.runtime import main" in review
    assert "the same code as above" in review  # the second data owner: same pinned hash

    mock_figures = tmp_path / "demo" / "ds_outputs" / "mock_figures"
    assert json.loads((mock_figures / "summary.json").read_text())["datasites"] == 2
    assert summary != json.loads((mock_figures / "summary.json").read_text())


def test_demo_fl_trains_the_model(tmp_path: Path) -> None:
    proc = _demo(tmp_path / "demo", "--fl")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    weights = tmp_path / "demo" / "ds_project" / "fl-diabetes-prediction" / "weights"
    metrics = json.loads((weights / "metrics.json").read_text())
    assert (weights / "round-1.npz").exists()
    assert metrics[0]["round"] == 0 and metrics[-1]["round"] == 10
    assert metrics[-1]["accuracy"] > metrics[0]["accuracy"]
    assert metrics[-1]["loss"] < metrics[0]["loss"]

    train_rows = json.loads((weights / "preprocessing.json").read_text())["rows"]
    last = metrics[-1]
    _expect_table(proc.stdout, last["participants"], train_rows + last["num-examples"], 10)
    assert sorted(last["participants"]) == DATASITES
    assert train_rows + last["num-examples"] == len(_private_union())

    # one count of rounds and one set of metrics everywhere: the run's events
    table = _table(proc.stdout)
    assert float(table["final accuracy"]) == pytest.approx(last["accuracy"], abs=5e-5)
    assert float(table["final AUC"]) == pytest.approx(last["auc"], abs=5e-5)
    assert "simulation: 10 rounds in " in proc.stdout
    network = Network.at(tmp_path / "demo", demo.NETWORK_KEY)
    (run,) = list_runs(network, aggregator=demo.DS_EMAIL)
    assert run.rounds_completed == 10 and run.to_dict()["rounds_completed"] == 10
    assert run.final_metrics["accuracy"] == pytest.approx(last["accuracy"])
    assert sorted(run.metrics) == list(range(11))  # round 0: the initial model
    assert table["run"].startswith(run.run_id)
    assert (weights / "metrics.png").stat().st_size > 10_000
    assert (run.project_dir / "runs" / run.run_id / "metrics.png").is_file()


def test_demo_failure_is_reported_with_a_non_zero_exit(tmp_path: Path) -> None:
    blocker = tmp_path / "demo"
    blocker.write_text("a file where the demo folder should go")
    proc = _demo(blocker / "inner")
    assert proc.returncode == 1
    assert f"{FAILED}cannot create the demo folder {blocker / 'inner'}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_demo_refuses_a_folder_that_is_not_a_demo_folder(tmp_path: Path) -> None:
    folder = tmp_path / "my-project"
    folder.mkdir()
    (folder / "notes.txt").write_text("precious")
    proc = _demo(folder)
    assert proc.returncode == 1
    assert f"{FAILED}{folder} is not a demo folder" in proc.stderr
    assert "pick another --folder or remove it" in proc.stderr
    assert (folder / "notes.txt").read_text() == "precious"
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


def test_prepare_folder_clears_only_empty_or_marked_folders(tmp_path: Path) -> None:
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / demo.MARKER).write_text("")
    (earlier / "old-output.txt").write_text("from the last demo")
    demo.prepare_folder(earlier)
    assert sorted(p.name for p in earlier.iterdir()) == [demo.MARKER]

    empty = tmp_path / "empty"
    empty.mkdir()
    demo.prepare_folder(empty)
    assert sorted(p.name for p in empty.iterdir()) == [demo.MARKER]

    a_file = tmp_path / "a-file"
    a_file.write_text("keep")
    with pytest.raises(demo.DemoError, match="is not a folder"):
        demo.prepare_folder(a_file)
    assert a_file.read_text() == "keep"


def test_an_unexpected_error_ends_as_the_demo_failure_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*args: object, **kwargs: object) -> str:
        raise KeyError("summary")

    monkeypatch.setattr(demo, "_quiet_console", lambda: None)
    monkeypatch.setattr(demo, "_run", broken)
    assert demo.run_demo(tmp_path / "demo") == 1
    assert f"{FAILED}unexpected KeyError: 'summary'" in capsys.readouterr().err


def test_missing_outputs_are_a_demo_error(tmp_path: Path) -> None:
    with pytest.raises(demo.DemoError, match="summary.json"):
        demo.read_outcome(tmp_path, fl=False)
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "metrics.json").write_text("[]")
    with pytest.raises(demo.DemoError, match="metrics.json"):
        demo.read_outcome(tmp_path, fl=True)


def test_the_summary_table_takes_its_figures_from_the_run(tmp_path: Path) -> None:
    figures, weights = tmp_path / "figures", tmp_path / "weights"
    figures.mkdir()
    weights.mkdir()
    # numbers no CSV or config of the repository would give
    (figures / "summary.json").write_text(
        json.dumps({"rows": {"0": 3, "1": 4}, "rounds": 5, "answered": ["a@x.org"]})
    )
    (weights / "metrics.json").write_text(
        json.dumps(
            [
                {"round": 0, "num-examples": 9, "participants": []},
                {"round": 3, "num-examples": 11, "participants": ["a@x.org", "b@x.org"]},
            ]
        )
    )
    (weights / "preprocessing.json").write_text(json.dumps({"rows": 40}))

    analytics = demo._summary(
        tmp_path, tmp_path, demo.read_outcome(tmp_path, fl=False), tmp_path, 1
    )
    _expect_table(analytics, ["a@x.org"], 7, 5)
    assert "7 (y=0: 3, y=1: 4)" in analytics
    fl = demo._summary(tmp_path, tmp_path, demo.read_outcome(tmp_path, fl=True), tmp_path, 1)
    _expect_table(fl, ["a@x.org", "b@x.org"], 51, 3)
    assert "51 (40 train + 11 test)" in fl


def test_review_lists_files_with_sizes_and_the_entrypoint(tmp_path: Path) -> None:
    code = tmp_path / "code"
    (code / "pkg").mkdir(parents=True)
    (code / "pkg" / "app.py").write_text("x" * 2048)
    total = demo.REVIEW_LINES + 10
    (code / "main.py").write_text("\n".join(f"line {i}" for i in range(1, total + 1)))
    job = SimpleNamespace(
        uid="j1", name="app", submitter="ds@x.org", code_path=code, entrypoint="main.py"
    )
    text = "\n".join(demo.review_text(job))
    assert "2 files" in text and "2.0 kB  pkg/app.py" in text and "main.py" in text
    assert f"| line {demo.REVIEW_LINES}" in text and f"| line {demo.REVIEW_LINES + 1}" not in text
    assert "(10 more lines)" in text


STOP_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from syft_flwr import demo
    from syft_flwr.rds import runner

    started = []
    start = runner.RunHandle._start

    def spy(self, *args, **kwargs):
        start(self, *args, **kwargs)
        started.append(self)

    runner.RunHandle._start = spy
    # a timeout no aggregator meets: the demo fails at step 6, after the jobs started
    code = demo.run_demo(Path(sys.argv[1]), timeout=0.5)
    print(json.dumps({
        "code": code,
        "started": len(started),
        "still_running": [h.job_uid for h in started if not h.done],
        "statuses": [h.status for h in started],
    }))
    """
)


def test_a_failed_demo_stops_the_data_owners_jobs(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", STOP_SCRIPT, str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["code"] == 1
    assert f"{FAILED}step 6" in proc.stderr
    assert report["started"] == 2
    assert report["still_running"] == []  # stopped by the demo, not left to their idle timeout
    assert report["statuses"] == ["failed", "failed"]


def test_without_bubblewrap_the_demo_says_so_and_runs_jobs_unsandboxed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from syft_flwr import demo
    from syft_flwr.sandbox import bwrap

    monkeypatch.setattr(bwrap.shutil, "which", lambda name: None)
    bwrap.bwrap_path.cache_clear()
    demo._sandbox_available.cache_clear()
    try:
        assert demo._sandbox_available() is False
        assert demo._sandbox_available() is False  # said once
    finally:
        bwrap.bwrap_path.cache_clear()
        demo._sandbox_available.cache_clear()
    out = capsys.readouterr().out
    assert out.count("NOTE: bubblewrap (bwrap) is not installed") == 1
    assert "apt-get install bubblewrap" in out and "without the sandbox" in out
