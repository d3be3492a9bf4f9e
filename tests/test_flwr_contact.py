"""flwr's private names are touched in one module only: syft_flwr/transport/flwr_compat.py.

flwr is pinned exactly, and the toolkit needs a few of its internals; keeping every contact in
one module (checked by tests/transport/test_flwr_compat.py) is what makes an upgrade a change
to one file. This test reads every Python file and notebook of the repository, tests and
benchmarks included, and fails on a private contact anywhere else.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support import REPO

#: the only files allowed to name flwr's internals: the module itself and its guard test
ALLOWED = {
    Path("toolkit/syft_flwr/transport/flwr_compat.py"),
    Path("tests/transport/test_flwr_compat.py"),
    Path("tests/test_flwr_contact.py"),
}
SEARCHED = (
    "toolkit",
    "tests",
    "benchmarks",
    "fed-analytics-diabetes",
    "fl-diabetes-prediction",
    "datasets",
    "images",
    "notebooks",
)
PRIVATE = [
    (re.compile(r"\bflwr(?:\.\w+)*\._[A-Za-z]\w*"), "a private name in a flwr module path"),
    (re.compile(r"from flwr[\w.]* import [^\n]*\b_[A-Za-z]\w*"), "a private name imported"),
    (re.compile(r"\bflwr\.(?:supercore|proto)\b"), "flwr's internal packages"),
    (re.compile(r"\bTaskIdentity\b"), "flwr's task identity"),
    (re.compile(r"__dict__\[\s*[\"']_"), "a private attribute set through __dict__"),
]


def _files() -> list[Path]:
    found = []
    for top in SEARCHED:
        for pattern in ("*.py", "*.ipynb"):
            found += [p for p in (REPO / top).rglob(pattern) if ".venv" not in p.parts]
    return sorted(found)


def contacts(text: str) -> list[str]:
    """What in ``text`` touches a private name of flwr."""
    return [f"{why}: {m.group(0)!r}" for rx, why in PRIVATE for m in rx.finditer(text)]


@pytest.mark.parametrize(
    "line",
    [
        "from flwr.simulation.run_simulation import _run_simulation",
        "x = flwr.server._private.thing",
        "from flwr.supercore.run import Run",
        "TaskIdentity.run_id = 3",
        'message.metadata.__dict__["_message_id"] = "x"',
    ],
)
def test_the_check_sees_a_private_contact(line: str) -> None:
    assert contacts(line)


def test_only_flwr_compat_touches_flwr_internals() -> None:
    files = _files()
    assert any(p.name == "flwr_compat.py" for p in files)  # the walk found the tree
    offenders = {}
    for path in files:
        if path.relative_to(REPO) in ALLOWED:
            continue
        found = contacts(path.read_text(encoding="utf-8", errors="replace"))
        if found:
            offenders[str(path.relative_to(REPO))] = found
    assert not offenders, (
        "flwr internals touched outside syft_flwr/transport/flwr_compat.py (add what is "
        f"needed there, with a guard in tests/transport/test_flwr_compat.py): {offenders}"
    )
