"""The dashboard's JSON endpoints, figure serving (and refusing), and the terminal views."""

from __future__ import annotations

import http.client
import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from syft_flwr.monitor import dashboard_main, format_status, serve_dashboard, status_main
from syft_flwr.network.layout import Network
from tests.monitor.producer import round_metrics, tiny_png
from tests.support import AGGREGATOR, DATASITES

DO1, DO2 = DATASITES


def get(url: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read(), resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as err:
        return err.code, err.read(), err.headers.get("Content-Type", "")


def get_json(url: str):
    status, body, ctype = get(url)
    assert status == 200 and ctype.startswith("application/json"), (status, body)
    return json.loads(body)


def raw_get(port: int, path: str) -> int:
    """A request with the path exactly as given (urllib would normalise it)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


@pytest.fixture
def finished_run(network: Network, producer):
    p = producer(rounds=2, round_delay=0.0, run_id=99)
    p.start()
    p.wait()
    return p


def test_json_endpoints(network: Network, finished_run):
    network.public_dir("do3@openmined.org").mkdir(parents=True, exist_ok=True)  # no heartbeat
    with serve_dashboard(network) as dash:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", dash.url) and dash.port > 0

        parts = get_json(dash.url + "api/participants")
        assert parts["network"] == str(network.root)
        by_email = {p["email"]: p for p in parts["participants"]}
        assert set(by_email) == {AGGREGATOR, DO1, DO2, "do3@openmined.org"}
        assert by_email[DO1]["online"] is True and by_email[DO1]["role"] == "datasite"
        assert by_email[DO1]["running"] == {"job": "job-1", "app": "fed-demo", "round": 2}
        assert by_email[AGGREGATOR]["role"] == "aggregator"
        assert by_email["do3@openmined.org"]["state"] == "no heartbeat"
        assert by_email["do3@openmined.org"]["heartbeat_age"] is None

        (run,) = get_json(dash.url + "api/runs")["runs"]
        assert run["run_id"] == "99" and run["status"] == "completed"
        assert run["rounds_completed"] == 2 and "rounds" not in run

        detail = get_json(dash.url + "api/runs/99")
        assert [r["round"] for r in detail["rounds"]] == [1, 2]
        assert detail["rounds"][0]["answered"] == [DO1, DO2]
        assert detail["datasite_stats"][DO2]["mean_latency_s"] == pytest.approx(0.1)
        assert get(dash.url + "api/runs/12345")[0] == 404

        figures = get_json(dash.url + "api/figures")["figures"]
        assert {f["name"] for f in figures} == {"round_1.png", "round_2.png"}
        for fig in figures:
            assert fig["run_id"] == "99" and fig["url"].startswith(f"/figures/99/{fig['name']}?")
            status, body, ctype = get(dash.url + fig["url"].lstrip("/"))
            assert (
                status == 200
                and ctype == "image/png"
                and body == tiny_png(rgb=(40 * int(fig["name"][6]) % 255, 90, 200))
            )

        status, text, ctype = get(dash.url + "metrics")
        assert status == 200 and ctype.startswith("text/plain")
        online = {
            s.labels["datasite"]: s.value
            for f in text_string_to_metric_families(text.decode())
            for s in f.samples
            if s.name == "syft_flwr_datasite_online"
        }
        assert online == {AGGREGATOR: 1, DO1: 1, DO2: 1, "do3@openmined.org": 0}

        status, page, ctype = get(dash.url)
        assert status == 200 and ctype.startswith("text/html")
        html = page.decode()
        assert 'id="participants"' in html and 'id="runs"' in html and 'id="figures"' in html
        # self-contained: nothing is fetched from another host
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
        assert "http://" not in html and "https://" not in html
        assert get(dash.url + "nope")[0] == 404


def test_figures_refuse_anything_outside_the_run_folder(
    network: Network, finished_run, tmp_path: Path
):
    figures = finished_run.project_dir / "figures"
    secret = finished_run.project_dir / "secret.png"
    secret.write_bytes(tiny_png())
    (figures / "notes.txt").write_text("not a figure")
    (figures / ".hidden.png").write_bytes(tiny_png())
    (figures / "link.png").symlink_to(secret)  # points out of figures/
    (figures / "sub").mkdir()
    (figures / "sub" / "deep.png").write_bytes(tiny_png())
    private = network.private_dir(DO1)
    private.mkdir(parents=True, exist_ok=True)
    (private / "data.png").write_bytes(tiny_png())

    with serve_dashboard(network) as dash:
        port = dash.port
        assert raw_get(port, "/figures/99/round_1.png") == 200
        refused = [
            "/figures/99/../secret.png",
            "/figures/99/%2e%2e/secret.png",
            "/figures/99/..%2fsecret.png",
            "/figures/99/%2e%2e%2fsecret.png",
            "/figures/99/link.png",
            "/figures/99/notes.txt",
            "/figures/99/.hidden.png",
            "/figures/99/sub/deep.png",
            "/figures/99/sub%2fdeep.png",
            "/figures/99/",
            "/figures/99/..%2f..%2f..%2fnet%2fprivate%2fdo1@openmined.org%2fdata.png",
            "/figures/..%2f..%2fsecret.png/x.png",
            "/figures/12345/round_1.png",
            f"/figures/99/{secret}",
            "/figures/99/%00.png",
        ]
        for path in refused:
            assert raw_get(port, path) in (403, 404), path
        listed = {f["name"] for f in get_json(dash.url + "api/figures")["figures"]}
        assert listed == {"round_1.png", "round_2.png"}


def test_format_status_and_status_main(network: Network, producer, tmp_path: Path, capsys):
    network.public_dir("do3@openmined.org").mkdir(parents=True, exist_ok=True)
    p = producer(rounds=1, round_delay=0.0, run_id=5)
    p.start()
    p.wait()
    text = format_status(network)
    lines = {line.split()[0]: line for line in text.splitlines()[2:-1]}
    assert set(lines) == {AGGREGATOR, DO1, DO2, "do3@openmined.org"}
    assert " online " in lines[DO1] and "datasite" in lines[DO1]
    assert "fed-demo job job-1 round 1" in lines[DO1]
    assert "no heartbeat" in lines["do3@openmined.org"] and "never" in lines["do3@openmined.org"]
    assert text.splitlines()[0].split()[:3] == ["DATASITE", "STATE", "HEARTBEAT"]
    assert text.endswith("3/4 online")

    printed = status_main(network.root.parent, network.root.name)
    assert capsys.readouterr().out.strip() == printed.strip()
    assert "RUN" in printed and "5 " in printed and "completed" in printed

    # --root naming the network folder itself: used as it is, whatever --key says
    assert status_main(network.root, "local_syftbox_network") == printed

    with pytest.raises(FileNotFoundError, match="no network at"):
        status_main(tmp_path / "missing", "net")
    assert format_status(Network.at(tmp_path / "empty", "net")).startswith("no datasites")


def test_dashboard_main_serves_until_stopped(network: Network, capsys):
    import threading
    import time

    stop = threading.Event()
    thread = threading.Thread(
        target=dashboard_main,
        args=(network.root.parent, network.root.name, 0),
        kwargs={"stop": stop},
        daemon=True,
    )
    thread.start()
    try:
        deadline = time.monotonic() + 20
        out = ""
        while "dashboard of" not in out and time.monotonic() < deadline:
            out += capsys.readouterr().out
            time.sleep(0.05)
        url = re.search(r"at (http://127\.0\.0\.1:\d+/)", out).group(1)
        assert get_json(url + "healthz") == {"ok": True}
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "healthz", timeout=2)


def test_state_and_its_event_stream(network: Network, producer) -> None:
    run = producer(rounds=2, round_delay=0.0, run_id=77, with_metrics=True)
    run.start()
    run.wait()
    with serve_dashboard(network) as dash:
        state = get_json(dash.url + "api/state")
        assert state["selected"] == "77" and state["run"]["rounds_completed"] == 2
        accuracy = [r["metrics"]["accuracy"] for r in state["run"]["rounds"]]
        assert accuracy == [round_metrics(1)["accuracy"], round_metrics(2)["accuracy"]]
        assert {p["email"] for p in state["participants"]} >= set(DATASITES)
        assert all("cpu_history" in p for p in state["participants"])
        assert set(state["cpu"]) == {"mean", "online", "history"}

        conn = http.client.HTTPConnection("127.0.0.1", dash.port, timeout=10)
        conn.request("GET", "/api/stream?run=77")
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.getheader("Content-Type").startswith("text/event-stream")
        lines = []
        while not lines or lines[-1] != "":  # up to the end of the first event
            line = resp.fp.readline().decode().rstrip("\n")
            if line.startswith(("event:", "data:")) or lines:
                lines.append(line)
        assert lines[0] == "event: state"
        pushed = json.loads(lines[1].removeprefix("data: "))
        assert pushed["selected"] == "77" and pushed["run"]["run_id"] == "77"
        conn.close()
    # the server ended every stream when it shut down (no thread left serving one)
    assert dash.server.sampler.stopped
