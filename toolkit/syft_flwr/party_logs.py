"""Per-party log files for threads that share one process (the simulation).

Each party's thread runs inside :func:`party_context`; a loguru sink per party keeps only
that party's records. Flower logs through the standard library: a handler on its "flwr"
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


@contextmanager
def party_log_files(sim_id: str, log_dir: Path, parties: list[str]) -> Iterator[dict[str, Path]]:
    """Write each party's records of simulation ``sim_id`` to ``log_dir/<party>.log``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    _install_flower_handler()
    paths: dict[str, Path] = {}
    sink_ids = []
    for party in parties:
        path = log_dir / f"{party}.log"
        path.unlink(missing_ok=True)
        paths[party] = path

        def keep(record, party=party) -> bool:  # noqa: ANN001 - loguru's record
            extra = record["extra"]
            return extra.get("sim") == sim_id and extra.get("party") == party

        sink_ids.append(logger.add(path, level="DEBUG", format=_FORMAT, filter=keep))
    with _files_lock:
        _files.update({(sim_id, party): path for party, path in paths.items()})
    body_failed = True
    try:
        yield paths
        body_failed = False
    finally:
        unflushed: list[OSError] = []
        for sink_id in sink_ids:
            try:
                logger.remove(sink_id)
            except OSError as exc:  # a full disk: the run's own error (if any) matters more
                unflushed.append(exc)
        with _files_lock:
            for party in parties:
                _files.pop((sim_id, party), None)
        if unflushed and not body_failed:
            raise OSError(
                unflushed[0].errno, f"could not finish the log files in {log_dir}: {unflushed[0]}"
            )
