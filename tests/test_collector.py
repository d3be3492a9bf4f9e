"""The garbage collector kept off long-lived objects: paused, frozen, and at exit."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import weakref
from pathlib import Path

import pytest

from syft_flwr import collector

SCRIPT = textwrap.dedent(
    """
    import atexit, gc, sys, tempfile, weakref
    from pathlib import Path

    # registered first, so it runs after the toolkit's hook
    atexit.register(lambda: print("frozen", gc.get_freeze_count() > 0, flush=True))

    from syft_flwr.collector import skip_collections_at_exit

    skip_collections_at_exit()
    skip_collections_at_exit()  # once per process, however often it is called

    out = Path(sys.argv[1])
    kept = tempfile.TemporaryDirectory(dir=out)  # never cleaned up explicitly
    (out / "folder.txt").write_text(kept.name)
    log = open(out / "log.txt", "w")  # never closed or flushed explicitly
    log.write("last line\\n")

    class Cycle:
        pass

    a, b = Cycle(), Cycle()
    a.other, b.other = b, a
    weakref.finalize(a, lambda: (out / "finalized.txt").write_text("yes"))
    """
)


def test_the_collector_is_frozen_at_exit_and_nothing_promised_is_lost(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "frozen True" in proc.stdout
    assert not Path((tmp_path / "folder.txt").read_text()).exists()  # weakref.finalize ran
    assert (tmp_path / "log.txt").read_text() == "last line\n"  # the file was flushed
    assert (tmp_path / "finalized.txt").read_text() == "yes"  # finalizers of live objects ran


class _Cycle:
    """Two of these pointing at each other are garbage only the cyclic collector frees."""

    def __init__(self) -> None:
        self.other: _Cycle | None = None


def _cycle(freed: list[str], name: str) -> None:
    a, b = _Cycle(), _Cycle()
    a.other, b.other = b, a
    weakref.finalize(a, freed.append, name)


def test_paused_stops_automatic_collections_and_restores_the_state() -> None:
    assert gc.isenabled()
    with collector.paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with collector.paused():
            pass
        assert not gc.isenabled()  # it was off before: it stays off
    finally:
        gc.enable()
    with pytest.raises(RuntimeError), collector.paused():
        raise RuntimeError("an app failed to load")
    assert gc.isenabled()


def test_explicit_collections_still_free_garbage_while_paused() -> None:
    freed: list[str] = []
    with collector.paused():
        _cycle(freed, "made while loading")
        gc.collect()
        assert freed == ["made while loading"]
