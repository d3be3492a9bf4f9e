"""Draw the diagrams the README and the notebooks show (matplotlib only).

    python images/draw.py          writes images/network.png, workflow.png, project_layout.png

Every picture is drawn in data coordinates on a fixed canvas, so boxes and text keep their
places whatever the screen; colours mean the same thing in every picture:
green = shared (any party may read), red = private (never leaves its owner), blue = the data
scientist, orange = written by syft_flwr.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

HERE = Path(__file__).resolve().parent
DPI = 150

INK = "#1f2933"
MUTED = "#52606d"
DS_FILL, DS_EDGE = "#e3f0fc", "#1c64b8"
SHARED_FILL, SHARED_EDGE = "#e4f6e9", "#2f8a4c"
PRIVATE_FILL, PRIVATE_EDGE = "#fde8e8", "#b83232"
DO_FILL, DO_EDGE = "#f7f7f9", "#7b8794"
BOOT_FILL, BOOT_EDGE = "#fff1dc", "#c26a00"
MSG = "#6b3fa0"


def canvas(width: float, height: float) -> tuple[plt.Figure, Axes]:
    """A figure whose data coordinates are inches: (0, 0) bottom left, (width, height) top right."""
    fig = plt.figure(figsize=(width, height), dpi=DPI)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")
    return fig, ax


def box(
    ax: Axes,
    x: float,
    y: float,
    w: float,
    h: float,
    fill: str,
    edge: str,
    *,
    lw: float = 1.6,
    pad: float = 0.06,
    style: str = "round",
    ls: str = "-",
    z: float = 1,
) -> None:
    """A rounded box with its lower left corner at (x, y)."""
    ax.add_patch(
        FancyBboxPatch(
            (x, y),
            w,
            h,
            boxstyle=f"{style},pad={pad},rounding_size=0.12",
            facecolor=fill,
            edgecolor=edge,
            linewidth=lw,
            linestyle=ls,
            zorder=z,
        )
    )


def text(ax: Axes, x: float, y: float, s: str, *, size: float = 11, **kw) -> None:
    kw.setdefault("color", INK)
    kw.setdefault("ha", "center")
    kw.setdefault("va", "center")
    ax.text(x, y, s, fontsize=size, zorder=5, **kw)


def arrow(
    ax: Axes,
    start: tuple[float, float],
    end: tuple[float, float],
    *,
    color: str = INK,
    lw: float = 1.8,
    rad: float = 0.0,
    ls: str = "-",
    both: bool = False,
) -> None:
    ax.add_patch(
        FancyArrowPatch(
            start,
            end,
            arrowstyle="<|-|>" if both else "-|>",
            mutation_scale=16,
            color=color,
            linewidth=lw,
            linestyle=ls,
            connectionstyle=f"arc3,rad={rad}",
            shrinkA=2,
            shrinkB=2,
            zorder=4,
        )
    )


def label(ax: Axes, x: float, y: float, s: str, color: str = INK, size: float = 10) -> None:
    """Text on a white rounded patch, to sit on top of an arrow."""
    ax.text(
        x,
        y,
        s,
        fontsize=size,
        color=color,
        ha="center",
        va="center",
        zorder=6,
        bbox={"boxstyle": "round,pad=0.25", "facecolor": "white", "edgecolor": color, "lw": 1},
    )


def save(fig: plt.Figure, name: str) -> Path:
    path = HERE / name
    fig.savefig(path, dpi=DPI, facecolor="white")
    plt.close(fig)
    return path


# -- network.png ----------------------------------------------------------------------------------
def draw_network() -> Path:
    fig, ax = canvas(16, 9.6)
    text(ax, 8, 9.2, "A network of datasites: messages are files", size=18, weight="bold")
    text(
        ax,
        8,
        8.78,
        "local_syftbox_network/ is one folder on this machine, or a folder a file sync "
        "(SyftBox) shares between machines",
        size=11.5,
        color=MUTED,
    )
    box(ax, 0.3, 0.95, 15.4, 7.45, "white", DO_EDGE, lw=1.2, ls=(0, (4, 3)), z=0)
    text(
        ax,
        0.55,
        8.22,
        "local_syftbox_network/",
        size=11,
        ha="left",
        family="monospace",
        color=MUTED,
    )

    # The data scientist.
    box(ax, 0.7, 1.35, 4.7, 6.1, DS_FILL, DS_EDGE, lw=2)
    text(ax, 3.05, 7.1, "Data scientist", size=15, weight="bold", color=DS_EDGE)
    text(ax, 3.05, 6.72, "ds@openmined.org", size=11, family="monospace")
    box(ax, 0.95, 4.75, 4.2, 1.5, "white", DS_EDGE, lw=1.2)
    text(ax, 3.05, 5.85, "Flower app (ServerApp + ClientApp)", size=11, weight="bold")
    text(
        ax,
        3.05,
        5.25,
        "bootstrapped, simulated on the mock data;\n"
        "python main.py --active runs the\nServerApp (the aggregator)",
        size=9.5,
        color=MUTED,
    )
    box(ax, 0.95, 2.55, 4.2, 1.75, SHARED_FILL, SHARED_EDGE, lw=1.2)
    text(ax, 3.05, 4.0, "datasites/ds@…/", size=10.5, family="monospace", weight="bold")
    text(ax, 3.05, 3.67, "shared: every party can read", size=9.5, color=SHARED_EDGE)
    text(ax, 1.1, 3.2, "app_data/flwr/<app>/inbox/", size=9.3, family="monospace", ha="left")
    text(ax, 1.1, 2.95, "the DOs' replies", size=8.8, color=MUTED, ha="left")
    box(ax, 0.95, 1.55, 4.2, 0.6, PRIVATE_FILL, PRIVATE_EDGE, lw=1.2)
    text(ax, 3.05, 1.85, "private/ds@…/  identity file", size=9.5, family="monospace")

    # The data owners.
    for i, y0 in ((1, 4.75), (2, 1.2)):
        box(ax, 8.1, y0, 7.35, 3.25, DO_FILL, DO_EDGE, lw=2)
        text(ax, 8.3, y0 + 2.95, f"Data owner {i}", size=14, weight="bold", ha="left")
        text(ax, 15.3, y0 + 2.95, f"do{i}@openmined.org", size=11, family="monospace", ha="right")
        # shared part
        box(ax, 8.3, y0 + 0.15, 3.75, 2.45, SHARED_FILL, SHARED_EDGE, lw=1.3)
        text(
            ax,
            10.17,
            y0 + 2.33,
            f"datasites/do{i}@…/",
            size=10.5,
            family="monospace",
            weight="bold",
        )
        text(ax, 10.17, y0 + 2.0, "shared: every party can read", size=9.5, color=SHARED_EDGE)
        rows = [
            ("public/datasets/pima…/", "README, mock/ (fake rows)"),
            ("app_data/rds/jobs/", "job inbox: submitted code"),
            ("app_data/flwr/<app>/inbox/", "Flower requests"),
        ]
        for k, (path, what) in enumerate(rows):
            yy = y0 + 1.6 - k * 0.55
            text(ax, 8.45, yy, path, size=9.3, family="monospace", ha="left")
            text(ax, 8.45, yy - 0.22, what, size=8.8, color=MUTED, ha="left")
        # private part
        box(ax, 12.4, y0 + 0.15, 2.9, 2.45, PRIVATE_FILL, PRIVATE_EDGE, lw=1.3)
        text(
            ax, 13.85, y0 + 2.33, f"private/do{i}@…/", size=10.5, family="monospace", weight="bold"
        )
        text(ax, 13.85, y0 + 2.0, "never shared", size=9.5, color=PRIVATE_EDGE)
        for k, line in enumerate(
            ["private data (csv)", "job runs: code copy,", "   logs, outputs", "audit log"]
        ):
            text(ax, 12.55, y0 + 1.68 - k * 0.28, line, size=9.3, ha="left")
        # the approved job reads private data and answers through the inbox
        arrow(ax, (12.4, y0 + 0.45), (12.05, y0 + 0.45), color=PRIVATE_EDGE, lw=1.4)
        text(
            ax,
            13.85,
            y0 + 0.45,
            "the approved job serves\nthe ClientApp",
            size=8.8,
            color=PRIVATE_EDGE,
        )

    # Messages between them: requests right (purple), replies left (green).
    for n, y_req, y_rep in ((1, 6.55, 5.6), (2, 3.3, 2.35)):
        arrow(ax, (5.45, y_req), (8.25, y_req), color=MSG, lw=2.2)
        arrow(ax, (8.25, y_rep), (5.45, y_rep), color=SHARED_EDGE, lw=2.2)
        label(ax, 6.85, y_req + 0.42, f"job code, Flower requests\n→ DO{n}'s inboxes", MSG, 9.5)
        label(ax, 6.85, y_rep - 0.35, "replies → DS's inbox", SHARED_EDGE, 9.5)

    # Legend.
    y = 0.45
    for x, fill, edge, what in (
        (0.5, SHARED_FILL, SHARED_EDGE, "shared: readable by every party (mock data, inboxes)"),
        (6.0, PRIVATE_FILL, PRIVATE_EDGE, "private: never leaves its owner"),
    ):
        box(ax, x, y - 0.15, 0.35, 0.3, fill, edge, lw=1.3, pad=0.02)
        text(ax, x + 0.5, y, what, size=10.5, ha="left")
    arrow(ax, (9.7, y + 0.08), (10.4, y + 0.08), color=MSG, lw=2)
    arrow(ax, (10.4, y - 0.1), (9.7, y - 0.1), color=SHARED_EDGE, lw=2)
    text(ax, 10.55, y, "files one party writes into another's inbox", size=10.5, ha="left")
    return save(fig, "network.png")


# -- workflow.png ---------------------------------------------------------------------------------
def draw_workflow() -> Path:
    fig, ax = canvas(17, 8.0)
    text(ax, 8.5, 7.6, "The data scientist / data owner workflow", size=18, weight="bold")
    text(
        ax,
        8.5,
        7.2,
        "notebooks/ds.ipynb, do1.ipynb and do2.ipynb walk through these steps",
        size=11.5,
        color=MUTED,
    )

    lanes = {"ds": 5.25, "do": 1.55}
    w, h = 1.8, 1.6
    for lane, fill, edge, title, note in (
        ("ds", "#f3f8fd", DS_EDGE, "Data scientist", "ds.ipynb"),
        ("do", "#fbf4f4", PRIVATE_EDGE, "Data owners", "do1.ipynb, do2.ipynb"),
    ):
        yc = lanes[lane]
        box(ax, 0.2, yc - 1.3, 16.6, 2.6, fill, edge, lw=1.0, z=0)
        text(ax, 0.6, yc, title, size=13, weight="bold", color=edge, rotation=90)
        text(ax, 1.0, yc, note, size=10, color=edge, rotation=90, family="monospace")

    steps = [
        ("do", 1.7, "0", "Publish dataset", "private + mock\n+ README\ndataset.create()"),
        ("ds", 2.5, "1", "Explore mock", "guest session;\npandas on mock;\nprivate: refused"),
        ("ds", 4.7, "2", "Bootstrap", "syft_flwr\n.bootstrap()\nwrites main.py"),
        ("ds", 6.9, "3", "Simulate", "syft_flwr.run()\non the mock data\n(threads)"),
        ("ds", 9.1, "4", "Submit job", "job.submit():\ncode copied to\neach DO's inbox"),
        ("do", 10.0, "5", "Review code", "show_user_code()\napprove (pins hash)\nor reject"),
        ("do", 12.3, "6", "Run on private", "run_private(job)\nserves the\nClientApp"),
        ("ds", 12.3, "7", "Aggregate", "once approved:\npython main.py\n--active"),
        ("ds", 14.75, "8", "Figures", "figures/*.png,\nsummary.json,\nvs. mock figures"),
        ("do", 14.75, "9", "Share & audit", "show_logs()\nshare_results()\naudit_log()"),
    ]
    centers: dict[str, tuple[float, float]] = {}
    for lane, x, n, title, detail in steps:
        yc = lanes[lane]
        fill, edge = (DS_FILL, DS_EDGE) if lane == "ds" else (PRIVATE_FILL, PRIVATE_EDGE)
        if n == "2":
            fill, edge = BOOT_FILL, BOOT_EDGE
        box(ax, x, yc - h / 2, w, h, fill, edge, lw=1.8)
        text(ax, x + w / 2, yc + 0.5, f"{n}. {title}", size=11.5, weight="bold")
        text(ax, x + w / 2, yc - 0.22, detail, size=9.3, color=MUTED, linespacing=1.25)
        centers[n] = (x + w / 2, yc)

    def across(a: str, b: str) -> None:
        (xa, ya), (xb, yb) = centers[a], centers[b]
        arrow(ax, (xa + w / 2 + 0.08, ya), (xb - w / 2 - 0.08, yb))

    for a, b in (("1", "2"), ("2", "3"), ("3", "4"), ("5", "6"), ("7", "8"), ("6", "9")):
        across(a, b)
    top_do, bottom_ds = lanes["do"] + h / 2 + 0.08, lanes["ds"] - h / 2 - 0.08
    arrow(
        ax,
        (centers["0"][0] + 0.4, top_do),
        (centers["1"][0] - 0.4, bottom_ds),
        color=SHARED_EDGE,
        lw=2,
    )
    label(ax, 4.05, 3.4, "the mock data\nis public", SHARED_EDGE, 9.5)
    arrow(ax, (centers["4"][0] + 0.3, bottom_ds), (centers["5"][0] - 0.3, top_do), color=MSG, lw=2)
    label(ax, 8.85, 3.4, "a job in each\nDO's inbox", MSG, 9.5)
    arrow(ax, (centers["6"][0], top_do), (centers["7"][0], bottom_ds), color=MSG, lw=2.6, both=True)
    label(
        ax,
        centers["7"][0] + 1.25,
        3.4,
        "Flower messages as\nfiles, round after\nround; a stop message\nends the job",
        MSG,
        9.5,
    )
    return save(fig, "workflow.png")


# -- project_layout.png ---------------------------------------------------------------------------
def draw_project_layout() -> Path:
    fig, ax = canvas(15, 8.6)
    text(
        ax, 7.5, 8.25, "A syft_flwr project: an ordinary Flower app folder", size=18, weight="bold"
    )

    rows = [
        # (indent, name, what, who)
        (0, "fed-analytics-diabetes/", "the Flower app folder you submit as a job", "you"),
        (1, "pyproject.toml", "[tool.flwr.app] components + config; [tool.syft_flwr]", "boot"),
        (1, "main.py", "generated: python main.py --active runs this party's part", "boot"),
        (1, "fed_analytics_diabetes/", "the app package (plain Flower code)", "you"),
        (2, "client_app.py", "ClientApp: reads get_syftbox_dataset_path()", "you"),
        (2, "server_app.py", "ServerApp: sends rounds, aggregates, writes figures", "you"),
        (2, "statistics.py …", "helpers: statistics.py, figures.py, settings.py", "you"),
        (1, "figures/", "<feature>_histogram.png, summary.json", "run"),
        (1, "weights/", "model weights and metrics per round (FL apps)", "run"),
        (1, "simulation_logs/", "one log per party from syft_flwr.run()", "run"),
    ]
    colors = {
        "you": (DS_FILL, DS_EDGE),
        "boot": (BOOT_FILL, BOOT_EDGE),
        "run": (SHARED_FILL, SHARED_EDGE),
    }
    top, step = 7.35, 0.62
    box(
        ax,
        0.35,
        top - step * (len(rows) - 1) - 0.45,
        9.2,
        step * len(rows) + 0.3,
        "white",
        DO_EDGE,
        lw=1.2,
        z=0,
    )
    for k, (indent, name, what, who) in enumerate(rows):
        y = top - k * step
        x = 0.6 + indent * 0.55
        if indent:
            # up to the previous sibling's line, or to the bottom of the parent's box
            j = max(i for i in range(k) if rows[i][0] <= indent)
            y_top = top - j * step - (0.24 if rows[j][0] < indent else 0)
            ax.plot([x - 0.35, x - 0.35, x - 0.08], [y_top, y, y], color=MUTED, lw=1.1, zorder=2)
        fill, edge = colors[who]
        tw = 0.125 * len(name) + 0.3
        box(ax, x, y - 0.2, tw, 0.4, fill, edge, lw=1.3, pad=0.03)
        text(ax, x + 0.15, y, name, size=11.5, family="monospace", ha="left", weight="bold")
        text(ax, 4.55, y, what, size=10.3, ha="left", color=INK)

    # [tool.syft_flwr] as bootstrap writes it.
    bx, by = 9.95, 4.95
    box(ax, bx, by, 4.75, 2.6, BOOT_FILL, BOOT_EDGE, lw=1.6)
    text(
        ax,
        bx + 0.15,
        by + 2.35,
        "pyproject.toml (excerpt)",
        size=11,
        weight="bold",
        ha="left",
        color=BOOT_EDGE,
    )
    snippet = (
        "[tool.flwr.app.components]\n"
        'serverapp = "…server_app:app"\n'
        'clientapp = "…client_app:app"\n'
        "\n"
        "[tool.syft_flwr]\n"
        'app_name = "fed-analytics-…-3f9c"\n'
        'aggregator = "ds@openmined.org"\n'
        "datasites = [\n"
        '  "do1@openmined.org",\n'
        '  "do2@openmined.org"]'
    )
    text(
        ax,
        bx + 0.15,
        by + 2.05,
        snippet,
        size=9.6,
        family="monospace",
        ha="left",
        va="top",
        linespacing=1.3,
    )

    bx, by = 9.95, 1.6
    box(ax, bx, by, 4.75, 2.85, DS_FILL, DS_EDGE, lw=1.6)
    text(
        ax,
        bx + 0.15,
        by + 2.6,
        "client_app.py: the one change",
        size=11,
        weight="bold",
        ha="left",
        color=DS_EDGE,
    )
    code = (
        "from syft_flwr.utils import (\n"
        "    get_syftbox_dataset_path)\n"
        "\n"
        "@app.query()\n"
        "def query(msg, context):\n"
        "    data = get_syftbox_dataset_path()\n"
        "    # mock data in a simulation,\n"
        "    # private data in a DO's job\n"
        "    table = load_data(data)\n"
        "    ..."
    )
    text(
        ax,
        bx + 0.15,
        by + 2.3,
        code,
        size=9.6,
        family="monospace",
        ha="left",
        va="top",
        linespacing=1.3,
    )

    y = 0.55
    for x, who, what in (
        (0.5, "you", "you write it (ordinary Flower code)"),
        (5.0, "boot", "syft_flwr.bootstrap() writes it"),
        (9.3, "run", "a run (simulation or real) writes it"),
    ):
        fill, edge = colors[who]
        box(ax, x, y - 0.15, 0.35, 0.3, fill, edge, lw=1.3, pad=0.02)
        text(ax, x + 0.5, y, what, size=10.5, ha="left")
    return save(fig, "project_layout.png")


def main() -> int:
    for draw in (draw_network, draw_workflow, draw_project_layout):
        print(f"wrote {draw()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
