"""The garbage collector kept off long-lived objects: paused, frozen after the first load, and
at exit."""

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


LOADS = textwrap.dedent(
    """
    import gc, weakref
    from syft_flwr import collector

    freed = []

    class Cycle:
        pass

    def cycle(name):
        a, b = Cycle(), Cycle()
        a.other, b.other = b, a
        weakref.finalize(a, freed.append, name)

    cycle("before the first load")
    try:
        with collector.loading_long_lived():
            raise ImportError("the app failed to load")
    except ImportError:
        pass
    print("frozen after a failed load", gc.get_freeze_count())
    with collector.loading_long_lived():
        assert not gc.isenabled()
        import json, decimal  # something that stays loaded
    print("enabled", gc.isenabled())
    first = gc.get_freeze_count()
    print("frozen after the first load", first > 0)
    cycle("between the loads")
    with collector.loading_long_lived():
        cycle("in the second load")
    print("the second load froze nothing more", gc.get_freeze_count() == first)
    gc.collect()
    print("freed", sorted(freed))
    """
)


def test_the_first_load_is_frozen_once_and_no_garbage_with_it() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", LOADS], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "frozen after a failed load 0"
    assert lines[1] == "enabled True"
    assert lines[2] == "frozen after the first load True"
    assert lines[3] == "the second load froze nothing more True"
    # garbage from before the freeze was collected first; later garbage is collected as usual
    assert lines[4] == (
        "freed ['before the first load', 'between the loads', 'in the second load']"
    )
