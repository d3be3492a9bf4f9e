"""The trusted node of a sandboxed Flower job: ``python -m syft_flwr.sandbox.job <project>``.

The job runner starts this (toolkit code, with the data owner's rights) instead of the job's
own ``main.py``: it serves the datasite as ``main.py --active`` would, with the ClientApp in
the sandbox that ``$SYFT_FLWR_SANDBOX`` describes. No code of the job runs outside it.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m syft_flwr.sandbox.job <project_dir>", file=sys.stderr)
        return 2
    from syft_flwr.runtime import main as run_party

    return run_party(Path(argv[0]).resolve(), ["--active"])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
