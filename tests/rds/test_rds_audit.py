"""The audit log on its own: a hash chain that stays whole under concurrent appends."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from syft_flwr.rds import AuditLog, AuditLogTamperedError

APPENDER = (
    "import sys; from pathlib import Path\n"
    "from syft_flwr.rds.audit import AuditLog\n"
    "log = AuditLog(Path(sys.argv[1]), actor='do1@openmined.org')\n"
    "for i in range(int(sys.argv[3])):\n"
    "    log.append('decision', writer=sys.argv[2], i=i)\n"
)


def test_chain_links_each_line_to_the_previous(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", actor="do1@openmined.org")
    assert log.entries() == []
    log.append("approve", job_id="j1")
    log.append("reject", job_id="j2", reason="no")
    lines = (tmp_path / "audit.jsonl").read_bytes().splitlines()
    first, second = (json.loads(line) for line in lines)
    assert first["prev"] == "0" * 64 and first["seq"] == 0
    assert second["prev"] == hashlib.sha256(lines[0]).hexdigest() and second["seq"] == 1
    assert [e["event"] for e in log.entries()] == ["approve", "reject"]
    assert log.entries()[1]["actor"] == "do1@openmined.org" and log.entries()[1]["at"]


def test_concurrent_appends_from_processes_and_threads(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    procs = [
        subprocess.Popen([sys.executable, "-c", APPENDER, str(path), f"p{i}", "40"])
        for i in range(3)
    ]
    log = AuditLog(path, actor="do1@openmined.org")
    threads = [
        threading.Thread(
            target=lambda n=n: [log.append("decision", writer=n, i=i) for i in range(40)]
        )
        for n in ("t0", "t1")
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for p in procs:
        assert p.wait(timeout=60) == 0
    entries = log.entries()  # the whole chain verifies
    assert len(entries) == 5 * 40
    by_writer: dict[str, list[int]] = {}
    for e in entries:
        by_writer.setdefault(e["writer"], []).append(e["i"])
    assert by_writer == {w: list(range(40)) for w in ("p0", "p1", "p2", "t0", "t1")}


def test_missing_head_is_tampering(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", actor="do1@openmined.org")
    log.append("approve", job_id="j1")
    log.head_path.unlink()
    with pytest.raises(AuditLogTamperedError, match="head"):
        log.entries()
    with pytest.raises(AuditLogTamperedError, match="head"):
        log.append("approve", job_id="j2")


def test_replaced_last_entry_is_tampering(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", actor="do1@openmined.org")
    log.append("approve", job_id="j1")
    log.append("approve", job_id="j2")
    lines = log.path.read_text().splitlines(keepends=True)
    last = json.loads(lines[-1])
    last["job_id"] = "j3"
    log.path.write_text(lines[0] + json.dumps(last, sort_keys=True) + "\n")
    with pytest.raises(AuditLogTamperedError, match="replaced"):
        log.entries()
