"""Per-party log files for threads that share one process (the simulation).

Each party's thread runs inside :func:`party_context`; one loguru sink per simulation writes
each record to its party's file (one sink, not one per party: loguru pays ~15 ms to set up
each sink). Flower logs through the standard library: a handler on its "flwr"
logger appends those records to the file of the party whose thread emitted them (and adds
nothing to the console, which Flower's own handler already serves).
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from loguru import logger

_FORMAT = "{time:HH:mm:ss.SSS} | {level: <7} | {extra[party]} | {message}"
_party: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "syft_flwr_party", default=None
)
_files: dict[tuple[str, str], Path] = {}
_files_lock = threading.Lock()


class _FlowerToPartyFile(logging.Handler):
    """Appends a Flower record to the current party's log file, if the thread has one."""

    def emit(self, record: logging.LogRecord) -> None:
        key = _party.get()
        path = _files.get(key) if key else None
        if path is None:
            return
        try:
            stamp = self.formatter.formatTime(record, "%H:%M:%S") if self.formatter else ""
            line = (
                f"{stamp}.{int(record.msecs):03d} | {record.levelname: <7} | {key[1]} | "
                f"{record.getMessage()}\n"
            )
            with path.open("a", encoding="utf-8") as fh:
                fh.write(line)
        except Exception:  # logging must never break a run
            self.handleError(record)


_handler = _FlowerToPartyFile()
_handler.setFormatter(logging.Formatter())


def _install_flower_handler() -> None:
    flwr_logger = logging.getLogger("flwr")
    with _files_lock:
        if _handler not in flwr_logger.handlers:
            flwr_logger.addHandler(_handler)


@contextmanager
def party_context(sim_id: str, party: str) -> Iterator[None]:
    """Mark the records of this thread as ``party``'s in simulation ``sim_id``."""
    token = _party.set((sim_id, party))
    try:
        with logger.contextualize(sim=sim_id, party=party):
            yield
    finally:
        _party.reset(token)


class _PartyFiles:
    """A loguru sink: each record of a simulation goes to its party's file (line-buffered, as
    loguru's own file sinks are, so Flower's lines appended in between keep their order)."""

    def __init__(self, paths: dict[str, Path]) -> None:
        self._files = {}
        try:
            for party, path in paths.items():
                self._files[party] = path.open("a", encoding="utf-8", buffering=1)
        except OSError:
            self.close()
            raise

    def write(self, message) -> None:  # noqa: ANN001 - loguru's Message
        file = self._files.get(message.record["extra"].get("party"))
        if file is not None:
            file.write(message)

    def close(self) -> list[OSError]:
        """Close every file; the errors of those that could not be finished."""
        errors = []
        for file in self._files.values():
            try:
                file.close()
            except OSError as exc:
                errors.append(exc)
        self._files = {}
        return errors


@contextmanager
def party_log_files(sim_id: str, log_dir: Path, parties: list[str]) -> Iterator[dict[str, Path]]:
    """Write each party's records of simulation ``sim_id`` to ``log_dir/<party>.log``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    _install_flower_handler()
    paths = {party: log_dir / f"{party}.log" for party in parties}
    for path in paths.values():
        path.unlink(missing_ok=True)
    files = _PartyFiles(paths)
    sink_id = logger.add(
        files, level="DEBUG", format=_FORMAT, filter=lambda r: r["extra"].get("sim") == sim_id
    )
    with _files_lock:
        _files.update({(sim_id, party): path for party, path in paths.items()})
    body_failed = True
    try:
        yield paths
        body_failed = False
    finally:
        logger.remove(sink_id)
        unflushed = files.close()  # a full disk: the run's own error (if any) matters more
        with _files_lock:
            for party in parties:
                _files.pop((sim_id, party), None)
        if unflushed and not body_failed:
            raise OSError(
                unflushed[0].errno, f"could not finish the log files in {log_dir}: {unflushed[0]}"
            )
