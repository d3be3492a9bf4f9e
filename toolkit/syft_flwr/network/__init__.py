"""The datasite network on disk: every path in one place, atomic file I/O, waiting for files."""

from syft_flwr.network.atomic import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    is_temporary,
    read_json,
)
from syft_flwr.network.files import LineLog, append_line, file_lock
from syft_flwr.network.layout import Network, validate_email, validate_name
from syft_flwr.network.watch import DirectoryWatcher

__all__ = [
    "DirectoryWatcher",
    "LineLog",
    "Network",
    "append_line",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "file_lock",
    "is_temporary",
    "read_json",
    "validate_email",
    "validate_name",
]
