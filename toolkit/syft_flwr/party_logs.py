"""Per-party log files for threads that share one process (the simulation).

Each party's thread runs inside ``logger.contextualize(sim=..., party=...)``; a loguru sink
per party keeps only that party's records. Flower logs through the standard library, so its
"flwr" logger is forwarded into loguru, where the same filters apply.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from loguru import logger

_FORMAT = "{time:HH:mm:ss.SSS} | {level: <7} | {extra[party]} | {message}"
_forwarder_lock = threading.Lock()


class _ToLoguru(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(exception=record.exc_info).log(level, record.getMessage())


def forward_flower_logs() -> None:
    """Send the records of Flower's stdlib logger to loguru (once per process)."""
    with _forwarder_lock:
        flwr_logger = logging.getLogger("flwr")
        if not any(isinstance(h, _ToLoguru) for h in flwr_logger.handlers):
            flwr_logger.addHandler(_ToLoguru())


@contextmanager
def party_log_files(sim_id: str, log_dir: Path, parties: list[str]) -> Iterator[dict[str, Path]]:
    """Write each party's records of simulation ``sim_id`` to ``log_dir/<party>.log``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    forward_flower_logs()
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
    try:
        yield paths
    finally:
        for sink_id in sink_ids:
            logger.remove(sink_id)
