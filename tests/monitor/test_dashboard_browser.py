"""The dashboard in a real headless Chromium, following a live run until it completes.

Chromium runs with its DevTools protocol on a pipe (:mod:`tests.monitor.browser`): one page
stays open for the whole run, so the test sees what the server pushes (server-sent events)
without reloading. ``images/dashboard.png`` (the README's picture) is the page of a real
``syft-flwr demo --fl`` run; set SYFT_FLWR_UPDATE_IMAGES=1 to refresh it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import pytest

from syft_flwr.monitor import serve_dashboard
from syft_flwr.network.layout import Network
from tests.monitor.browser import CHROMIUM, Browser, Page
from tests.monitor.helpers import wait_until
from tests.monitor.producer import round_metrics
from tests.support import AGGREGATOR, DATASITES, REPO, missing_tool

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


def parse(page: Page) -> _Elements:
    """The page's DOM as it is now."""
    parser = _Elements()
    parser.feed(page.html())
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
        round_delay=0.8,
        run_id=2002,
        app_name="fed-analytics",
        write_figure=histogram_figure("Glucose", "mg/dL", 120),
        with_metrics=True,
    )
    with serve_dashboard(network) as dash, Browser(tmp_path / "chromium-profile") as browser:
        page = browser.open(dash.url)  # opened before the run: everything after is pushed
        wait_until(lambda: page.eval("document.body.dataset.updates"), 30, "a first push")
        live.start(hold_before_end=True)
        assert live.round_done.wait(30), f"the live producer is stuck: {live.error!r}"

        # while the run is live: every datasite online, the run running, rounds advancing
        def running() -> _Elements | None:
            dom = parse(page)
            rows = dom.find(**{"_tag": "tr", "data-run-id": "2002"})
            live_ = rows and rows[0]["data-status"] == "running"
            return dom if live_ and int(rows[0]["data-rounds-completed"]) >= 1 else None

        dom = wait_until(running, 30, "the live run on the page")
        for email in [AGGREGATOR, *DATASITES]:
            (row,) = dom.find(**{"_tag": "tr", "data-datasite": email})
            assert row["data-online"] == "true" and row["data-state"] == "online"
        (row,) = dom.find(**{"_tag": "tr", "data-run-id": "2002"})
        assert 1 <= int(row["data-rounds-completed"]) <= ROUNDS

        def advanced() -> _Elements | None:
            dom = parse(page)
            detail = dom.find(id="run-detail")[0]
            return dom if detail.get("data-rounds-completed") == str(ROUNDS) else None

        dom = wait_until(advanced, 60, f"the page to show {ROUNDS} completed rounds", step=0.1)
        detail = dom.find(id="run-detail")[0]
        assert detail["data-run-id"] == "2002"  # the live run is the one shown
        assert dom.find(id="detail-rounds")[0]["_text"] == str(ROUNDS)
        assert dom.find(id="detail-rounds-label")[0]["_text"] == "rounds completed"
        rounds = dom.find(**{"_tag": "tr", "class": "round"})
        assert [r["data-round"] for r in rounds] == [str(i) for i in range(1, ROUNDS + 1)]
        cells = [e for e in dom.elements if e["_tag"] == "td" and e.get("data-result")]
        assert len(cells) == ROUNDS * len(DATASITES)
        assert all(c["data-result"] == "answered" for c in cells)
        latency = {e["data-datasite"]: e for e in dom.find(**{"class": "latency"})}
        assert set(latency) == set(DATASITES)
        figures = {e["data-name"] for e in dom.find(**{"_tag": "figure"})}
        assert {f"glucose_round_{i}.png" for i in range(1, ROUNDS + 1)} <= figures

        # live updates: pushed by the server, one stream, no polling, seen without a reload
        assert page.eval("document.body.dataset.transport") == "sse"
        seen = [int(n) for n in page.eval("document.body.dataset.seenRounds").split(",")]
        assert seen == sorted(seen) and len(seen) >= 3 and seen[-1] == ROUNDS, seen
        api = {path: n for path, n in dash.server.hits.items() if path.startswith("/api/")}
        assert api == {"/api/stream": 1}, api  # one stream for the whole run, no polling
        assert int(page.eval("document.body.dataset.updates")) >= 3
        assert dash.server.pushed >= 3

        # the training charts: one per metric, one point per round, the values reported
        charts = {e["data-metric"] for e in dom.find(**{"_tag": "svg", "class": "chart"})}
        assert charts == {"loss", "accuracy", "auc"}
        points = page.eval(
            "[...document.querySelectorAll('svg.chart[data-metric=accuracy] circle')]"
            ".map(c => [Number(c.dataset.round), Number(c.dataset.value)])"
        )
        assert points == [
            [r, pytest.approx(round_metrics(r)["accuracy"])] for r in range(1, ROUNDS + 1)
        ]

        # the network's mean CPU and a short history per datasite
        assert page.eval("document.getElementById('cpu-mean').dataset.mean") != ""
        wait_until(
            lambda: all(
                int(
                    page.eval(
                        f'document.querySelector(\'tr[data-datasite="{e}"] '
                        "td[data-cpu-samples]').dataset.cpuSamples"
                    )
                )
                >= 2
                for e in DATASITES
            ),
            30,
            "two CPU samples per datasite",
        )

        # plurals: the texts say "1 round", "2 replies", never "1 replies"
        text = page.eval("document.body.innerText")
        assert f"{ROUNDS} replies" in text and "1 replies" not in text and "1 rounds" not in text

        # a figure opens full size on a click
        page.eval("document.querySelector('#figures figure a').click()")
        assert page.eval("document.getElementById('lightbox').hidden") is False
        src = page.eval("document.querySelector('#lightbox img').src")
        assert (
            "/figures/" in src
            and page.eval(
                "document.querySelector('#lightbox img').complete && "
                "document.querySelector('#lightbox img').naturalWidth"
            )
            > 300
        )
        page.eval("document.getElementById('lightbox').click()")
        assert page.eval("document.getElementById('lightbox').hidden") is True

        # the run ends: the open page says completed; the older run still shows as failed
        live.hold.set()
        live.wait()

        def completed() -> _Elements | None:
            dom = parse(page)
            return dom if dom.find(id="run-detail")[0].get("data-status") == "completed" else None

        dom = wait_until(completed, 60, "the page to show the run completed")
        assert dom.find(**{"_tag": "tr", "data-run-id": "1001"})[0]["data-status"] == "failed"
        assert dom.find(**{"_tag": "tr", "data-run-id": "2002"})[0]["data-rounds-completed"] == str(
            ROUNDS
        )


def test_dashboard_of_a_real_demo_run(tmp_path: Path):
    """`syft-flwr demo --fl` runs while the dashboard's page is open; the page shows the same
    10 rounds as the demo's summary, the training charts, and becomes images/dashboard.png."""
    folder = tmp_path / "demo"
    network = Network.at(folder, "local_syftbox_network")
    with serve_dashboard(network) as dash, Browser(tmp_path / "profile") as browser:
        page = browser.open(dash.url)
        demo = subprocess.run(
            [sys.executable, "-m", "syft_flwr.cli", "demo", "--fl", "--folder", str(folder)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
        summary_rounds = next(
            line.split(":", 1)[1].strip()
            for line in demo.stdout.splitlines()
            if line.strip().startswith("rounds:")
        )
        assert summary_rounds == "10"

        def shown() -> _Elements | None:  # the run, and its training figure (drawn last)
            dom = parse(page)
            detail = dom.find(id="run-detail")
            done = detail and detail[0].get("data-status") == "completed"
            drawn = any(e["data-name"] == "metrics.png" for e in dom.find(_tag="figure"))
            return dom if done and drawn else None

        dom = wait_until(shown, 60, "the demo's run on the page")
        assert dom.find(id="run-detail")[0]["data-rounds-completed"] == "10"
        (run_row,) = dom.find(**{"_tag": "tr", "class": "run selected"})
        assert run_row["data-rounds-completed"] == "10"
        points = page.eval(
            "[...document.querySelectorAll('svg.chart[data-metric=auc] circle')]"
            ".map(c => Number(c.dataset.round))"
        )
        assert points == list(range(11))  # round 0 (the initial model) to round 10
        time.sleep(0.5)  # the figures' images load
        shot = page.screenshot(tmp_path / "dashboard.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    target = REPO / "images" / "dashboard.png"
    if os.environ.get("SYFT_FLWR_UPDATE_IMAGES") == "1" or not target.exists():
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, target)
