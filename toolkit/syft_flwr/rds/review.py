"""What the data owner reads when reviewing a job: the code, with nothing hidden.

A terminal or a notebook shows some characters in ways that hide code: a lone carriage
return moves back to the start of the line (what follows overwrites what came before, yet
Python reads both as lines), escape sequences redraw the screen, bidi overrides reorder what
is displayed, zero-width characters are not displayed at all. And a ``# coding:``
declaration makes Python decode a file differently from how it is shown. So every file is
shown with those characters escaped, and flagged; :func:`source_problems` lists what makes
a job's Python source unfit to approve.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

#: PEP 263: a coding declaration in one of the first two lines
_CODING = re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)", re.MULTILINE)
_UTF8_NAMES = {"utf-8", "utf8", "utf_8", "u8"}


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _hidden(ch: str) -> bool:
    """A character a reader would not see as itself (controls, format, separators)."""
    if ch in "\n\t":
        return False
    return unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn")


def visible(text: str) -> tuple[str, int]:
    """``text`` with every hidden character escaped; returns it and how many were escaped.

    ``\\r\\n`` stays a line end; a lone ``\\r`` is shown as ``\\r`` and ends the line, as it
    does for Python.
    """
    out: list[str] = []
    escaped = 0
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\r":
            if i + 1 < n and text[i + 1] == "\n":
                out.append("\n")
                i += 2
                continue
            out.append("\\r\n")
            escaped += 1
        elif _hidden(ch):
            out.append(_escape(ch))
            escaped += 1
        else:
            out.append(ch)
        i += 1
    return "".join(out), escaped


def declared_coding(data: bytes) -> str | None:
    """The source encoding a file declares in its first two lines (PEP 263), if any."""
    head = b"\n".join(data.split(b"\n", 2)[:2])
    match = _CODING.search(head)
    return match.group(1).decode("ascii", "replace").lower() if match else None


def source_problems(rel: str, data: bytes) -> list[str]:
    """Why the Python file ``rel`` would not run as it is shown (empty if it would)."""
    if not rel.endswith(".py"):
        return []
    problems = []
    coding = declared_coding(data)
    if coding is not None and coding.replace("-", "_") not in {
        c.replace("-", "_") for c in _UTF8_NAMES
    }:
        problems.append(
            f"{rel} declares the source encoding {coding!r}: Python would decode it "
            "differently from how it is shown for review"
        )
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        problems.append(f"{rel} is not valid UTF-8")
    return problems


def review_text(rel: str, data: bytes) -> str:
    """One file for review: a header with its (escaped) name and warnings, then its text."""
    name, _ = visible(rel)
    warnings = source_problems(rel, data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        if rel.endswith(".py"):
            text = data.decode("utf-8", errors="backslashreplace")
        else:
            digest = hashlib.sha256(data).hexdigest()
            text = f"<binary file, {len(data)} bytes, sha256 {digest}>"
    body, escaped = visible(text)
    if escaped:
        warnings.append(
            f"{escaped} hidden character(s) (control, bidi, zero-width, lone carriage return) "
            "shown escaped"
        )
    header = f"{'=' * 20} {name} {'=' * 20}"
    flags = "".join(f"!! WARNING: {w}\n" for w in warnings)
    return f"{header}\n{flags}{body.rstrip()}\n"
