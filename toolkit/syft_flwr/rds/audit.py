"""The data owner's append-only, hash-chained audit log (one JSON object per line).

Each entry carries ``prev``: the sha256 of the previous line's bytes (64 zeros for the first
line), and ``seq``: its position. A sidecar head file records the count and hash of the last
line, so removing the last lines is caught as well as editing, removing or reordering any line.
Appends happen under an ``fcntl`` lock, so threads and processes of the data owner interleave
whole lines only. The log is tamper-*evident* against edits by hand or by other tools, not a
defence against someone who rewrites the whole chain and its head.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from syft_flwr.network.atomic import atomic_write_json, read_json
from syft_flwr.network.files import append_line, file_lock
from syft_flwr.rds._files import utc_now
from syft_flwr.rds.errors import AuditLogTamperedError

GENESIS = "0" * 64


def _line_hash(line: bytes) -> str:
    return hashlib.sha256(line.rstrip(b"\n")).hexdigest()


class AuditLog:
    """The audit log at ``path`` (``<private>/rds/audit.jsonl``)."""

    def __init__(self, path: Path, actor: str):
        self.path = Path(path)
        self.actor = actor
        self.head_path = self.path.with_name(self.path.name + ".head")
        self.lock_path = self.path.with_name("." + self.path.name + ".lock")

    def append(self, event: str, **fields: Any) -> dict[str, Any]:
        """Append one decision; returns the entry written."""
        with file_lock(self.lock_path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            last = self._last_line()
            seq = 0
            prev = GENESIS
            if last is not None:
                try:
                    seq = int(json.loads(last)["seq"]) + 1
                except (ValueError, KeyError, TypeError) as exc:
                    raise AuditLogTamperedError(
                        f"the last line of {self.path} is not a valid audit entry ({exc}); "
                        "the log was edited outside syft_flwr. Keep the file for investigation "
                        "and move it aside to start a new log"
                    ) from exc
                prev = _line_hash(last)
            self._check_head(seq, prev)
            entry = {"seq": seq, "at": utc_now(), "actor": self.actor, "event": event, **fields}
            entry["prev"] = prev
            text = json.dumps(entry, sort_keys=True, default=str)
            append_line(self.path, text, durable=True)
            line = text.encode("utf-8")
            atomic_write_json(self.head_path, {"count": seq + 1, "last_hash": _line_hash(line)})
            return entry

    def _check_head(self, count: int, last_hash: str) -> None:
        """Refuse to extend a log whose end was cut off or replaced since the last append."""
        head = read_json(self.head_path) if self.head_path.exists() else None
        if head is None:
            if count:
                raise AuditLogTamperedError(
                    f"the head file of the audit log {self.path} is missing"
                )
            return
        if head.get("count", 0) > count or (
            head.get("count") == count and head.get("last_hash") != last_hash
        ):
            raise AuditLogTamperedError(
                f"the end of the audit log {self.path} was removed or replaced since the last "
                "entry was written; keep the file for investigation and move it aside to start "
                "a new log"
            )

    def _last_line(self) -> bytes | None:
        """The last complete line, read from the end of the file."""
        if not self.path.exists():
            return None
        with self.path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            end = fh.tell()
            if end == 0:
                return None
            chunk = 4096
            buf = b""
            pos = end
            while pos > 0:
                step = min(chunk, pos)
                pos -= step
                fh.seek(pos)
                buf = fh.read(step) + buf
                body = buf.rstrip(b"\n")
                if b"\n" in body:
                    return body.rsplit(b"\n", 1)[1]
            return buf.rstrip(b"\n") or None

    def entries(self) -> list[dict[str, Any]]:
        """Every entry, after checking the whole chain; AuditLogTamperedError if broken."""
        with file_lock(self.lock_path):
            raw = self.path.read_bytes() if self.path.exists() else b""
            head = read_json(self.head_path) if self.head_path.exists() else None
        lines = raw.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        where = f"the audit log {self.path}"
        entries: list[dict[str, Any]] = []
        prev = GENESIS
        for i, line in enumerate(lines):
            try:
                entry = json.loads(line)
            except ValueError as exc:
                raise AuditLogTamperedError(
                    f"line {i + 1} of {where} is not valid JSON: the log was edited"
                ) from exc
            if not isinstance(entry, dict) or entry.get("prev") != prev or entry.get("seq") != i:
                raise AuditLogTamperedError(
                    f"line {i + 1} of {where} does not follow line {i}: an entry was edited, "
                    "removed or reordered. Keep the file for investigation; nothing in it after "
                    f"line {i} can be trusted"
                )
            entries.append(entry)
            prev = _line_hash(line)
        count = len(entries)
        if head is None:
            if count:
                raise AuditLogTamperedError(f"the head file of {where} is missing")
            return entries
        head_count = head.get("count")
        if not isinstance(head_count, int) or head_count > count or head_count < 0:
            raise AuditLogTamperedError(
                f"{where} has {count} entries but {head_count} were written: "
                "entries at its end were removed"
            )
        if head_count and _line_hash(lines[head_count - 1]) != head.get("last_hash"):
            raise AuditLogTamperedError(f"entry {head_count} of {where} was replaced")
        return entries


def audited_refusal(
    audit: AuditLog,
    job_id: str,
    action: str,
    message: str,
    exc_type: type[Exception] = PermissionError,
) -> Exception:
    """Audit that the owner's ``action`` on ``job_id`` was refused; return the error to raise."""
    audit.append("refusal", job_id=job_id, action=action, reason=message)
    return exc_type(message)
