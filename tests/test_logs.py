"""The toolkit logs like a library: nothing unless the application enables it."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap

from loguru import logger

from syft_flwr.logs import enable_logging, log_failure

SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import syft_flwr  # disables the toolkit's records
    from syft_flwr.crypto import create_party
    from syft_flwr.network import Network

    create_party(Network(Path(sys.argv[1])), "ds@openmined.org")
    if len(sys.argv) > 2:
        syft_flwr.enable_logging("INFO")
        create_party(Network(Path(sys.argv[1])), "do1@openmined.org")
        from loguru import logger
        logger.bind().info("enabled")  # the script's own line
        from syft_flwr.logs import log_failure
        try:
            raise ValueError("the reason")
        except ValueError as exc:
            log_failure("the step failed", exc)
    """
)


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, timeout=120
    )


def test_import_disables_the_toolkit_records(tmp_path) -> None:
    quiet = _run(str(tmp_path / "a"))
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == "" and quiet.stdout == ""


def test_enabled_at_info_a_failure_is_one_line_without_traceback(tmp_path) -> None:
    loud = _run(str(tmp_path / "b"), "enable")
    assert loud.returncode == 0, loud.stderr
    lines = loud.stderr.strip().splitlines()
    assert "DEBUG" not in loud.stderr  # key creation logs at DEBUG
    assert "Traceback" not in loud.stderr
    assert lines[-1].endswith("ERROR   | the step failed: ValueError: the reason")


def test_log_failure_keeps_the_traceback_at_debug() -> None:
    out = io.StringIO()
    sink = logger.add(out, level="DEBUG", format="{level} {message}")
    try:
        try:
            raise KeyError("k")
        except KeyError as exc:
            log_failure("reading", exc)
    finally:
        logger.remove(sink)
    text = out.getvalue()
    assert "Traceback" in text and text.index("Traceback") < text.index("ERROR reading")
    assert text.rstrip().endswith("ERROR reading: KeyError: 'k'")


def test_enable_logging_replaces_its_own_sink() -> None:
    first, second = io.StringIO(), io.StringIO()
    enable_logging("WARNING", sink=first)
    sink = enable_logging("WARNING", sink=second)
    try:
        logger.warning("once")
    finally:
        logger.remove(sink)
    assert first.getvalue() == "" and "once" in second.getvalue()
