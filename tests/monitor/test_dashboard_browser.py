"""The dashboard in a real headless Chromium, following a live run until it completes.

Chromium's ``--dump-dom`` with a virtual-time budget returns the DOM after the page's scripts
ran (and fetched the JSON endpoints); the test dumps it until the run has advanced.
Set SYFT_FLWR_UPDATE_IMAGES=1 to refresh images/dashboard.png (the README's picture).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import pytest

from syft_flwr.monitor import serve_dashboard
from syft_flwr.network.layout import Network
from tests.monitor.helpers import wait_until
from tests.support import AGGREGATOR, DATASITES, REPO, missing_tool

CHROMIUM = Path("/usr/bin/chromium")
ROUNDS = 4

pytestmark = pytest.mark.skipif(
    missing_tool(CHROMIUM),
    reason="/usr/bin/chromium is missing: install Debian's `chromium` package to run this test",
)


class _Elements(HTMLParser):
    """Every start tag's attributes, with the text directly inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[dict[str, str | None]] = []
        self._stack: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = {"_tag": tag, "_text": "", **dict(attrs)}
        self.elements.append(element)
        if tag not in ("img", "meta", "link", "br", "input"):
            self._stack.append(element)

    def handle_endtag(self, tag: str) -> None:
        while self._stack and self._stack.pop()["_tag"] != tag:
            pass

    def handle_data(self, data: str) -> None:
        if self._stack:
            self._stack[-1]["_text"] += data

    def find(self, **attrs: str) -> list[dict[str, str | None]]:
        return [e for e in self.elements if all(e.get(k) == v for k, v in attrs.items())]


def chromium(args: list[str], profile: Path, timeout: float = 60) -> str:
    """Run headless Chromium once in its own process group; returns stdout."""
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        *args,
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # its helpers share the group we end below
        text=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
        return out
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def dump(url: str, profile: Path) -> _Elements:
    parser = _Elements()
    parser.feed(chromium(["--virtual-time-budget=3000", "--dump-dom", url], profile))
    return parser


def histogram_figure(feature: str, unit: str, mean: float) -> Callable[[Path, int], None]:
    """Writes a matplotlib histogram per round, like the analytics app's (for the screenshot)."""

    def write(folder: Path, rnd: int) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np

        rng = np.random.default_rng(rnd)
        fig, ax = plt.subplots(figsize=(4.2, 2.8), dpi=80)
        values = rng.normal(mean, mean / 4, 400 * rnd)
        ax.hist(values, bins=20, color="#5b8def", edgecolor="white")
        ax.set_title(f"{feature}, aggregated over datasites (round {rnd})", fontsize=9)
        ax.set_xlabel(unit, fontsize=8)
        fig.tight_layout()
        fig.savefig(folder / f"{feature.lower()}_round_{rnd}.png")
        plt.close(fig)

    return write


def test_dashboard_in_chromium(network: Network, producer, tmp_path: Path):
    # an earlier run that failed, and a live one
    old = producer(
        rounds=2,
        round_delay=0.0,
        run_id=1001,
        fail={2: DATASITES[1]},
        project_dir=tmp_path / "older",
        with_heartbeats=False,
        write_figure=histogram_figure("BMI", "kg/m²", 32),
    )
    old.start()
    old.wait()
    live = producer(
        rounds=ROUNDS,
        round_delay=0.4,
        run_id=2002,
        app_name="fed-analytics",
        write_figure=histogram_figure("Glucose", "mg/dL", 120),
    )
    profile = tmp_path / "chromium-profile"
    with serve_dashboard(network) as dash:
        live.start(hold_before_end=True)
        assert live.round_done.wait(30), f"the live producer is stuck: {live.error!r}"

        # while the run is live: every datasite online, the run running, rounds advancing
        page = dump(dash.url, profile)
        for email in [AGGREGATOR, *DATASITES]:
            (row,) = page.find(**{"_tag": "tr", "data-datasite": email})
            assert row["data-online"] == "true" and row["data-state"] == "online"
        (row,) = page.find(**{"_tag": "tr", "data-run-id": "2002"})
        assert row["data-status"] == "running"
        seen = int(row["data-rounds-completed"])
        assert 1 <= seen <= ROUNDS

        def advanced() -> _Elements | None:
            page = dump(dash.url, profile)
            detail = page.find(id="run-detail")[0]
            return page if detail.get("data-rounds-completed") == str(ROUNDS) else None

        page = wait_until(advanced, 60, f"the page to show {ROUNDS} completed rounds", step=0)
        detail = page.find(id="run-detail")[0]
        assert detail["data-run-id"] == "2002"  # the live run is the one shown
        assert page.find(id="detail-rounds")[0]["_text"] == str(ROUNDS)
        rounds = page.find(**{"_tag": "tr", "class": "round"})
        assert [r["data-round"] for r in rounds] == [str(i) for i in range(1, ROUNDS + 1)]
        cells = [e for e in page.elements if e["_tag"] == "td" and e.get("data-result")]
        assert len(cells) == ROUNDS * len(DATASITES)
        assert all(c["data-result"] == "answered" for c in cells)
        latency = {e["data-datasite"] for e in page.find(**{"class": "latency"})}
        assert latency == set(DATASITES)
        figures = {e["data-name"] for e in page.find(**{"_tag": "figure"})}
        assert {f"glucose_round_{i}.png" for i in range(1, ROUNDS + 1)} <= figures

        # the run ends: the page says completed; the older run still shows as failed
        live.hold.set()
        live.wait()
        page = wait_until(
            lambda: (
                (p := dump(dash.url, profile)).find(id="run-detail")[0].get("data-status")
                == "completed"
                and p
            ),
            60,
            "the page to show the run completed",
            step=0,
        )
        assert page.find(**{"_tag": "tr", "data-run-id": "1001"})[0]["data-status"] == "failed"
        assert page.find(**{"_tag": "tr", "data-run-id": "2002"})[0][
            "data-rounds-completed"
        ] == str(ROUNDS)

        shot = tmp_path / "dashboard.png"
        chromium(
            [
                "--virtual-time-budget=3000",
                "--window-size=1400,1500",
                f"--screenshot={shot}",
                dash.url,
            ],
            profile,
        )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    target = REPO / "images" / "dashboard.png"
    if os.environ.get("SYFT_FLWR_UPDATE_IMAGES") == "1" or not target.exists():
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, target)
