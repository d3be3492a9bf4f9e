"""A job's code: which files belong to it, what is refused, and its content hash.

The same scan serves the data scientist (before anything is submitted) and the data owner
(before approving and before running), so code dropped into the inbox by other means than
:meth:`GuestJobs.submit <syft_flwr.rds.guest_jobs.GuestJobs.submit>` meets the same rules.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from syft_flwr.network.atomic import atomic_write_bytes
from syft_flwr.network.safe_read import read_regular
from syft_flwr.rds.review import review_text

MB = 1024 * 1024

#: Folders and files never copied into a job (caches, environments, local outputs).
SKIP_DIRS = frozenset(
    {
        "__pycache__",
        ".git",
        ".venv",
        "simulation_logs",
        "figures",
        "weights",
        "runs",  # the event logs of the data scientist's own runs and simulations
        ".ipynb_checkpoints",
        ".pytest_cache",
        ".ruff_cache",
        ".mypy_cache",
    }
)
SKIP_FILES = ("*.pyc",)


@dataclass(frozen=True)
class SubmissionLimits:
    """Size limits of a job's code."""

    max_file_bytes: int = 10 * MB
    max_total_bytes: int = 50 * MB
    max_files: int = 10_000


DEFAULT_LIMITS = SubmissionLimits()


def _skipped_file(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in SKIP_FILES)


def check_entrypoint(entrypoint: str) -> str:
    """Return the entrypoint as a normalised relative POSIX path, or ValueError.

    It must be a relative path to a ``.py`` file inside the code that does not start with
    ``-`` (Python would take it as an option, e.g. ``-c`` runs code from the name itself).
    """
    if not isinstance(entrypoint, str) or not entrypoint.strip():
        raise ValueError("entrypoint must be a file name relative to the code, e.g. 'main.py'")
    if entrypoint.startswith("-"):
        raise ValueError(
            f"entrypoint {entrypoint!r:.80} starts with '-', which Python would read as an "
            "option: name a .py file of the code, e.g. 'main.py'"
        )
    if not entrypoint.endswith(".py") or any(ord(c) < 32 or ord(c) == 127 for c in entrypoint):
        raise ValueError(
            f"entrypoint {entrypoint!r:.80} is not a .py file: name the Python file that runs "
            "the job, e.g. 'main.py'"
        )
    if (
        entrypoint.startswith(("/", "\\"))
        or PurePosixPath(entrypoint).is_absolute()
        or (len(entrypoint) > 1 and entrypoint[1] == ":")
    ):
        raise ValueError(
            f"entrypoint {entrypoint!r} is absolute: give a path relative to the code folder, "
            "e.g. 'main.py'"
        )
    parts = PurePosixPath(entrypoint.replace("\\", "/")).parts
    if ".." in parts:
        raise ValueError(
            f"entrypoint {entrypoint!r} leaves the code folder ('..'): give a path inside it"
        )
    return str(PurePosixPath(*[p for p in parts if p != "."]))


def scan_code(root: Path, limits: SubmissionLimits = DEFAULT_LIMITS) -> list[str]:
    """Sorted relative POSIX paths of the files that make up the code at ``root``.

    ``root`` may be a folder or a single file. Refuses (ValueError) symlinks anywhere in the
    tree, anything that is not a plain file or folder, names that are not UTF-8, more than
    ``limits.max_files`` files, and files over the size limits. Skips :data:`SKIP_DIRS` and
    ``*.pyc``.
    """
    root = Path(root)
    if root.is_symlink():
        raise ValueError(f"{root} is a symlink: submit the real folder, not a link to it")
    if root.is_file():
        _check_size(root, root.stat().st_size, limits)
        return [_utf8_name(root, root.name)]
    if not root.is_dir():
        raise FileNotFoundError(f"code folder {root} does not exist")
    files: list[tuple[str, int]] = []
    for current, dirnames, filenames in os.walk(root, followlinks=False, onerror=_raise):
        here = Path(current)
        for d in list(dirnames):
            if d in SKIP_DIRS:
                dirnames.remove(d)
            elif (here / d).is_symlink():
                raise ValueError(
                    f"{here / d} is a symlink: a job's code may only hold plain files; "
                    "copy what it points to into the project instead"
                )
        for name in filenames:
            path = here / name
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                raise ValueError(
                    f"{path} is a symlink: a job's code may only hold plain files; "
                    "copy what it points to into the project instead"
                )
            if _skipped_file(name):
                continue
            if not stat.S_ISREG(mode):
                raise ValueError(f"{path} is not a regular file (device, pipe or socket)")
            size = path.lstat().st_size
            _check_size(path, size, limits)
            files.append((_utf8_name(path, path.relative_to(root).as_posix()), size))
            if len(files) > limits.max_files:
                raise ValueError(
                    f"the code in {root} has more than {limits.max_files} files: leave data, "
                    "environments and outputs out of the job"
                )
    total = sum(size for _, size in files)
    if total > limits.max_total_bytes:
        raise ValueError(
            f"the code in {root} is {total / MB:.1f} MB, over the limit of "
            f"{limits.max_total_bytes / MB:.1f} MB: leave data, weights and outputs out of "
            "the job (the data owner's data reaches it through DATA_DIR)"
        )
    return sorted(rel for rel, _ in files)


def _raise(exc: OSError) -> None:
    """os.walk's onerror: an unreadable folder is an error, not a silently smaller job."""
    raise exc


def _utf8_name(path: Path, rel: str) -> str:
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(
            f"{path!r} has a name that is not valid UTF-8: rename it (a job's file names are "
            "recorded in its request and hash)"
        ) from None
    return rel


def _check_size(path: Path, size: int, limits: SubmissionLimits) -> None:
    if size > limits.max_file_bytes:
        raise ValueError(
            f"{path} is {size / MB:.1f} MB, over the per-file limit of "
            f"{limits.max_file_bytes / MB:.1f} MB: leave data and weights out of the job's "
            "code (the data owner's data reaches it through DATA_DIR)"
        )


def _file_of(root: Path, rel: str) -> Path:
    return root if root.is_file() else root / rel


def _update(digest: hashlib._Hash, rel: str, data: bytes) -> None:
    name = rel.encode("utf-8")
    digest.update(len(name).to_bytes(8, "big") + name)
    digest.update(len(data).to_bytes(8, "big") + data)


def code_sha256(root: Path, limits: SubmissionLimits = DEFAULT_LIMITS) -> str:
    """sha256 over the sorted relative paths and bytes of the code (length-prefixed)."""
    root = Path(root)
    digest = hashlib.sha256()
    for rel in scan_code(root, limits):
        _update(digest, rel, _read_plain(_file_of(root, rel), limits))
    return digest.hexdigest()


def _read_plain(path: Path, limits: SubmissionLimits = DEFAULT_LIMITS) -> bytes:
    """Read a regular file; refuse a symlink, a pipe or a larger file swapped in after the
    scan (UnsafeFileError, a ValueError)."""
    return read_regular(path, limits.max_file_bytes)


def read_code(root: Path, rel: str, limits: SubmissionLimits = DEFAULT_LIMITS) -> bytes:
    """The bytes of the code file ``rel`` under ``root`` (a regular file, within the limit)."""
    return _read_plain(_file_of(Path(root), rel), limits)


def copy_code(
    src: Path, dest: Path, limits: SubmissionLimits = DEFAULT_LIMITS, *, durable: bool = True
) -> str:
    """Copy the code at ``src`` into the folder ``dest`` and return the hash of what was copied.

    Each file is read once: the bytes hashed are exactly the bytes written.
    """
    src = Path(src)
    digest = hashlib.sha256()
    dest.mkdir(parents=True, exist_ok=True)
    for rel in scan_code(src, limits):
        data = _read_plain(_file_of(src, rel), limits)
        _update(digest, rel, data)
        atomic_write_bytes(dest / rel, data, durable=durable)
    return digest.hexdigest()


def render_code(root: Path, limits: SubmissionLimits = DEFAULT_LIMITS) -> str:
    """The code as text for review: every file under a header with its name.

    Nothing is printed raw: control characters, bidi and other invisible format characters
    and lone carriage returns are shown escaped (``\\x1b``, ``\\u202e``, ``\\r``), a file that
    is not UTF-8 is shown with its bytes escaped, and a file that declares another source
    encoding (``# coding: ...``) is flagged (approval refuses it, see :func:`source_problems`).
    """
    root = Path(root)
    chunks = []
    for rel in scan_code(root, limits):
        chunks.append(review_text(rel, _read_plain(_file_of(root, rel))))
    return "\n".join(chunks)
