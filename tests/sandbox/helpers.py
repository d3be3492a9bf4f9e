"""Helpers of the sandbox tests: probing jobs and the processes they leave."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any


def alive_with(marker: str) -> list[int]:
    """Pids of the processes whose command line holds ``marker`` (this process excluded)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(int(name))
    return found


def wait_none_alive(marker: str, timeout: float = 10.0) -> list[int]:
    """[] once no process holds ``marker``; the survivors if some still do at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        alive = alive_with(marker)
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


def events(admin: Any, name: str) -> list[dict[str, Any]]:
    return [e for e in admin.audit_log() if e["event"] == name]


def probe_result(handle: Any) -> dict[str, Any]:
    return json.loads((handle.output_dir / "probe.json").read_text())


#: a job that tries each path in $PROBE_PATHS and records what happened
PROBE = """\
import json, os
result = {}
for path in os.environ["PROBE_PATHS"].split(":"):
    try:
        with open(path, "rb") as fh:
            result[path] = "read " + fh.read(65536).decode("latin-1")
    except OSError as exc:
        result[path] = type(exc).__name__
result["env"] = dict(os.environ)
result["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
rows = open(os.path.join(os.environ["DATA_DIR"], "diabetes.csv")).read().splitlines()[1:]
result["rows"] = len(rows)
open(os.path.join(os.environ["OUTPUT_DIR"], "probe.json"), "w").write(json.dumps(result))
"""
