"""Atomic writes: a reader, in any process, never sees a partial file."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from syft_flwr.network.atomic import (
    TMP_PREFIX,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    is_temporary,
    read_json,
)

# A writer process: COUNT times, overwrite shared.bin and add a new file of its own. Each
# file is self-checking: 8-byte length, payload, sha256 of the payload.
WRITER = textwrap.dedent(
    """
    import hashlib, os, random, sys
    from pathlib import Path
    from syft_flwr.network.atomic import atomic_write_bytes

    folder, name, count, durable = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
    rng = random.Random(name)
    for k in range(count):
        payload = os.urandom(rng.randint(1, 256 * 1024))
        blob = len(payload).to_bytes(8, "big") + payload + hashlib.sha256(payload).digest()
        atomic_write_bytes(folder / "shared.bin", blob, durable=durable == "1")
        atomic_write_bytes(folder / f"{name}-{k}.bin", blob, durable=durable == "1")
    """
)


def whole(blob: bytes) -> bool:
    if len(blob) < 40:
        return False
    size = int.from_bytes(blob[:8], "big")
    payload = blob[8 : 8 + size]
    return len(blob) == 8 + size + 32 and hashlib.sha256(payload).digest() == blob[-32:]


def test_concurrent_writers_in_processes_never_show_a_partial_file(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    count = 60
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(folder), f"w{i}", str(count), str(i % 2)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    reads = partial = 0
    try:
        while any(w.poll() is None for w in writers):
            if (folder / "shared.bin").exists():
                reads += 1
                partial += not whole((folder / "shared.bin").read_bytes())
            for name in os.listdir(folder):
                if is_temporary(name):
                    continue
                reads += 1
                partial += not whole((folder / name).read_bytes())
    finally:
        for w in writers:
            _, err = w.communicate(timeout=60)
            assert w.returncode == 0, err[-2000:]
    assert partial == 0, f"{partial} of {reads} reads saw a partial file"
    names = sorted(os.listdir(folder))
    assert not [n for n in names if n.startswith(TMP_PREFIX)], "temporary files were left"
    assert len(names) == 3 * count + 1
    assert all(whole((folder / n).read_bytes()) for n in names)


def test_round_trips(tmp_path: Path) -> None:
    atomic_write_bytes(tmp_path / "a" / "b.bin", b"\x00\x01")
    assert (tmp_path / "a" / "b.bin").read_bytes() == b"\x00\x01"  # parents are created
    atomic_write_text(tmp_path / "t.txt", "héllo", durable=False)
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "héllo"
    atomic_write_json(tmp_path / "j.json", {"b": 1, "a": [1, 2], "p": Path("/x")})
    assert read_json(tmp_path / "j.json") == {"a": [1, 2], "b": 1, "p": "/x"}
    atomic_write_bytes(tmp_path / "t.txt", memoryview(b"replaced"))
    assert (tmp_path / "t.txt").read_bytes() == b"replaced"
    assert sorted(os.listdir(tmp_path)) == ["a", "j.json", "t.txt"]


def test_failed_write_leaves_nothing_and_names_the_path(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()  # renaming a file onto a folder fails
    with pytest.raises(OSError, match=f"could not write {target}"):
        atomic_write_bytes(target, b"data")
    assert os.listdir(tmp_path) == ["taken"] and os.listdir(target) == []


def test_is_temporary() -> None:
    assert is_temporary(f"{TMP_PREFIX}abc-file.json")
    assert is_temporary(".hidden")
    assert not is_temporary("file.json")
    assert not is_temporary("tmp-file.json")
