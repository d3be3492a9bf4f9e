"""The job store's typed records, the role each session gets, and rds's import graph."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

import syft_flwr.rds
from syft_flwr.errors import SyftFlwrError
from syft_flwr.rds import (
    GuestJobs,
    JobRecord,
    JobRecordError,
    JobStatus,
    OwnerJobs,
    RunRecord,
    errors,
    intake,
    signed,
)
from tests.rds.rds_helpers import approved, submit

RDS_DIR = Path(syft_flwr.rds.__file__).parent


def test_record_round_trips_through_json(net, tmp_path: Path) -> None:
    job = approved(net, tmp_path)
    net.admin.run_mock(job)
    record = net.admin.store.load(job.uid)
    assert isinstance(record, JobRecord) and isinstance(record.runs[0], RunRecord)
    assert (record.job_id, record.submitter) == (job.uid, job.submitter)
    assert (record.entrypoint, record.dataset_name) == ("main.py", job.dataset_name)
    assert record.pinned_sha256 == record.seen_sha256 == job.code_sha256
    steps = ["pending_code_review", "approved", "running", "completed"]
    assert [h.status for h in record.history] == steps
    on_disk = json.loads(net.admin.store.state_path(job.uid).read_text())
    assert on_disk["version"] == 1 and on_disk["status"] == "completed"
    assert on_disk["runs"][0]["kind"] == "mock" and on_disk["runs"][0]["exit_code"] == 0
    assert JobRecord.from_json(on_disk) == record
    assert JobRecord.from_json(json.loads(json.dumps(record.to_json()))) == record


def test_a_record_written_before_versioning_still_reads(net, tmp_path: Path) -> None:
    job = net.admin.job.get(uid=submit(net, tmp_path).uid)  # its first sighting
    data = net.admin.store.load(job.uid).to_json()
    del data["version"]
    assert JobRecord.from_json(data).status == JobStatus.PENDING_CODE_REVIEW


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d.update(version=2),
        lambda d: d.update(status="exploded"),
        lambda d: d.pop("request"),
        lambda d: d.update(surprise=1),
        lambda d: d.update(runs=[{"n": 1}]),
        lambda d: d.update(request="not an object"),
    ],
    ids=["version", "status", "missing", "unknown", "run", "request"],
)
def test_a_record_that_does_not_parse_is_a_clear_error(net, tmp_path: Path, damage) -> None:
    job = net.admin.job.get(uid=submit(net, tmp_path).uid)
    path = net.admin.store.state_path(job.uid)
    data = json.loads(path.read_text())
    damage(data)
    path.write_text(json.dumps(data))
    with pytest.raises(JobRecordError, match="not a valid job record"):
        net.admin.job.get(uid=job.uid)
    path.write_text("{not json")
    with pytest.raises(JobRecordError, match="not valid JSON"):
        net.admin.store.load(job.uid)


def test_store_paths_come_from_the_network(net) -> None:
    network, store = net.admin.network, net.admin.store
    assert store.state_path("j1") == network.job_state_path(net.admin.host, "j1")
    assert store.run_dir("j1", 2) == network.owner_jobs_dir(net.admin.host) / "j1" / "runs" / "2"
    assert store.root.parent == network.rds_private_dir(net.admin.host)
    with pytest.raises(ValueError, match="job id"):
        store.state_path("../escape")


def test_each_session_gets_its_role(net) -> None:
    assert isinstance(net.admin.job, OwnerJobs) and net.admin.jobs is net.admin.job
    assert isinstance(net.guest.job, GuestJobs) and net.guest.jobs is net.guest.job
    assert not isinstance(net.guest.job, OwnerJobs)


def test_rds_errors_are_syft_flwr_errors_with_their_builtin_bases() -> None:
    for cls in (
        errors.AuditLogTamperedError,
        errors.JobNotFoundError,
        errors.JobRefusedError,
        errors.DatasetNotFoundError,
        errors.JobStateError,
        errors.JobRecordError,
        intake.SubmissionRefusedError,
        intake.SubmissionIncompleteError,
        signed.ResultsNotSharedError,
        signed.ResultsTamperedError,
    ):
        assert issubclass(cls, SyftFlwrError), cls
    assert issubclass(errors.JobRefusedError, PermissionError)
    assert issubclass(intake.SubmissionRefusedError, PermissionError)
    assert issubclass(signed.ResultsTamperedError, PermissionError)
    assert issubclass(errors.JobRecordError, ValueError)


def _rds_imports(path: Path) -> tuple[set[str], list[str]]:
    """(rds modules ``path`` imports at top level, rds imports made anywhere else)."""
    tree = ast.parse(path.read_text())
    top, hidden = set(), []

    def rds_names(node: ast.AST) -> list[str]:
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "syft_flwr.rds":
                return [f"syft_flwr.rds.{a.name}" for a in node.names]
            return [node.module] if node.module.startswith("syft_flwr.rds.") else []
        if isinstance(node, ast.Import):
            return [a.name for a in node.names if a.name.startswith("syft_flwr.rds.")]
        return []

    for node in tree.body:
        top.update(rds_names(node))
    for node in ast.walk(tree):
        if node not in tree.body:
            hidden.extend(rds_names(node))
    return top, hidden


def test_rds_has_no_import_cycle_and_hides_no_import() -> None:
    graph = {}
    for path in sorted(RDS_DIR.glob("*.py")):
        if path.name == "__init__.py":
            continue
        top, hidden = _rds_imports(path)
        assert hidden == [], f"{path.name} imports {hidden} inside a function or TYPE_CHECKING"
        graph[f"syft_flwr.rds.{path.stem}"] = top

    done: set[str] = set()

    def visit(module: str, trail: tuple[str, ...]) -> None:
        assert module not in trail, f"import cycle: {' -> '.join((*trail, module))}"
        if module in done:
            return
        for dep in graph.get(module, ()):
            visit(dep, (*trail, module))
        done.add(module)

    for module in graph:
        visit(module, ())
    assert {"syft_flwr.rds.guest_jobs", "syft_flwr.rds.owner_jobs", "syft_flwr.rds.store"} <= done
