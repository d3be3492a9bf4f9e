"""What an attacker (or a careless tool) can drop into a data owner's inbox by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings

from syft_flwr.config import Identity
from syft_flwr.crypto import sign_document
from syft_flwr.network.atomic import atomic_write_json
from syft_flwr.rds._files import utc_now
from syft_flwr.rds.code import code_sha256
from syft_flwr.rds.intake import REQUEST_DOMAIN, REQUEST_VERSION
from syft_flwr.rds.jobs import new_job_id
from tests.rds.rds_helpers import COUNT_ROWS, DATASET, DO, DS

#: Property tests: no example database in the repository, a deadline per example as a hang
#: guard (generous: the machine is shared), and a fixed budget so the suite stays fast.
SECURITY = settings(
    database=None,
    deadline=5000,
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

CODE = {"main.py": COUNT_ROWS, "helper.py": "VALUE = 1\n"}


def request_payload(job_id: str, code: dict[str, str], **overrides: Any) -> dict[str, Any]:
    payload = {
        "version": REQUEST_VERSION,
        "job_id": job_id,
        "name": "count-rows",
        "dataset_name": DATASET,
        "entrypoint": "main.py",
        "submitter": DS,
        "host": DO,
        "code_sha256": "",
        "files": sorted(code),
        "created_at": utc_now(),
        "description": "",
    }
    payload.update(overrides)
    return payload


def forge_submission(
    inbox: Path,
    signer: Identity | None,
    *,
    code: dict[str, str] | None = None,
    job_id: str | None = None,
    **overrides: Any,
) -> Path:
    """Write ``<inbox>/<job_id>/`` with code and a request signed by ``signer`` (None: unsigned).

    ``overrides`` replace request fields after the code hash is computed (so a wrong
    ``code_sha256`` can be forged too).
    """
    code = CODE if code is None else code
    job_id = job_id or new_job_id()
    job_dir = inbox / job_id
    for rel, text in code.items():
        (job_dir / "code" / rel).parent.mkdir(parents=True, exist_ok=True)
        (job_dir / "code" / rel).write_text(text)
    sha = code_sha256(job_dir / "code")
    payload = request_payload(job_id, code, code_sha256=sha)
    payload.update(overrides)
    document = sign_document(signer, REQUEST_DOMAIN, payload) if signer else payload
    atomic_write_json(job_dir / "request.json", document)
    return job_dir
