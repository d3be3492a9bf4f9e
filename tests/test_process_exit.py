"""The quick exit: the collector is frozen at exit, and what Python promises still happens."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import atexit, gc, sys, tempfile, weakref
    from pathlib import Path

    # registered first, so it runs after the toolkit's hook
    atexit.register(lambda: print("frozen", gc.get_freeze_count() > 0, flush=True))

    from syft_flwr.process_exit import skip_collections_at_exit

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
