"""Write ds.ipynb, do1.ipynb and do2.ipynb (without outputs) from the cells below.

    python notebooks/build_notebooks.py

The .ipynb files are the product; this script keeps the three notebooks consistent (the same
setup cell, the same waiting helper) and makes changes reviewable as plain Python.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

# -- shared pieces --------------------------------------------------------------------------------

SETUP = r"""import os
import sys
import time
from pathlib import Path

import pandas as pd
import syft_flwr
from IPython.display import Markdown, Pretty, display

# Where the network folder and the data scientist's working copy live (default: next to this
# notebook), and where the syft_flwr repository is (datasets/, example apps).
ROOT = Path(os.environ.get("SYFT_FLWR_NOTEBOOK_ROOT", ".")).resolve()
REPO = Path(os.environ.get("SYFT_FLWR_REPO", "..")).resolve()
# How long a cell that waits for another party waits before it gives up (seconds).
TIMEOUT = float(os.environ.get("SYFT_FLWR_NOTEBOOK_TIMEOUT", "900"))

NETWORK_KEY = "local_syftbox_network"  # the network is the folder ROOT / NETWORK_KEY
DATASET = "pima-indians-diabetes-database"
DS_EMAIL = "ds@openmined.org"
DO_EMAILS = ["do1@openmined.org", "do2@openmined.org"]

# The toolkit logs nothing unless asked: show its INFO lines (and the apps'), short.
syft_flwr.enable_logging("INFO")

if not (REPO / "datasets" / DATASET).is_dir():
    raise FileNotFoundError(
        f"no {DATASET} in {REPO / 'datasets'}: run this notebook from the notebooks/ folder of "
        "the syft_flwr repository, or set SYFT_FLWR_REPO to the repository"
    )
ROOT.mkdir(parents=True, exist_ok=True)
print(f"network folder: {ROOT / NETWORK_KEY}")
print(f"repository:     {REPO}")
print(f"wait timeout:   {TIMEOUT:g} s")"""

WAIT_HELPER = r'''def wait_until(what, check, timeout=TIMEOUT, hint="", every=0.5):
    """Call check() until it returns something truthy, and return that.

    Shows one progress line that updates in place; gives up with TimeoutError after `timeout`
    seconds, saying what it waited for and what to do (`hint`).
    """
    progress = display(Pretty(f"waiting for {what} ..."), display_id=True)
    started = time.monotonic()
    while True:
        result = check()
        elapsed = time.monotonic() - started
        if result:
            progress.update(Pretty(f"done: {what} (after {elapsed:.0f} s)"))
            return result
        if elapsed > timeout:
            progress.update(Pretty(f"gave up waiting for {what} after {timeout:g} s"))
            raise TimeoutError(f"gave up waiting for {what} after {timeout:g} s. {hint}")
        progress.update(
            Pretty(f"waiting for {what} ... {elapsed:.0f} s (gives up after {timeout:g} s)")
        )
        time.sleep(every)'''


def notebook(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    nb = new_notebook(
        cells=[
            new_markdown_cell(src) if kind == "md" else new_code_cell(src) for kind, src in cells
        ],
        metadata={
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
    )
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:02d}"  # stable ids: rebuilding gives the same file
    return nb


# -- the data owners ------------------------------------------------------------------------------


def do_cells(n: int) -> list[tuple[str, str]]:
    other = 2 if n == 1 else 1
    return [
        (
            "md",
            f"""# Data owner {n}: publish a dataset, review a job, run it on the private data

You are **do{n}@openmined.org**, a hospital holding part of the Pima Indians Diabetes data.
A data scientist (DS) wants statistics over *all* hospitals' patients, but no patient row may
leave your datasite. In this notebook you

1. log into your own datasite (as its **admin**),
2. publish the dataset: the **private** part stays with you, a small **mock** part (fake rows,
   same columns) becomes visible to everyone,
3. wait for the DS's job, **review its code** and **approve** it,
4. **run** it on your private data: it answers the DS's Flower queries with aggregate
   statistics only,
5. read the job's logs, **share** its results with the DS, and read your **audit log**.

**How to run the three notebooks.** Run `do1.ipynb` and `do2.ipynb` (this one and data owner
{other}'s) up to the cell that waits for a job, then run `ds.ipynb`. All three use the same
network folder (`ROOT / "local_syftbox_network"`), so on one machine they talk to each other
through files.

![workflow](../images/workflow.png)""",
        ),
        (
            "code",
            SETUP + f"\n\nDO_EMAIL = DO_EMAILS[{n - 1}]  # who this notebook is\n"
            f'DATA = REPO / "datasets" / DATASET / "do{n}"  # this hospital\'s files',
        ),
        (
            "md",
            """## 1. Log into your datasite

`setup_rds_server` joins the network as `DO_EMAIL`: it creates your datasite (the shared part,
`datasites/<email>/`), your private folder (`private/<email>/`, never shared) and your
identity file. `reset=True` starts afresh, deleting what an earlier run of this notebook left
(only yours). A session with your *own* datasite is an **admin** session: only it can publish
datasets, approve and run jobs and share results.""",
        ),
        (
            "code",
            r"""from syft_flwr.rds import setup_rds_server

do = setup_rds_server(email=DO_EMAIL, root_dir=ROOT, key=NETWORK_KEY, reset=True)
do_admin = do.init_session(host=DO_EMAIL)
print(do_admin)
print("admin:", do_admin.is_admin)
assert do_admin.is_admin""",
        ),
        (
            "md",
            """## 2. Publish the dataset

`dataset.create` copies the private CSVs into your private folder and publishes the mock CSVs
and the README on your datasite. The DS will see the mock rows and the README, never the
private rows.""",
        ),
        (
            "code",
            r"""readme = DATA / "README.md"
if not readme.exists():
    readme = REPO / "datasets" / DATASET / "README.md"

dataset = do_admin.dataset.create(
    name=DATASET,
    path=DATA / "private",
    mock_path=DATA / "mock",
    summary=f"Pima Indians Diabetes: {DO_EMAIL}'s patients",
    description_path=readme,
)
print(dataset)
print("mock (public): ", dataset.get_mock_path())
print("private (yours):", dataset.get_private_path())

private = pd.concat(pd.read_csv(p) for p in sorted(dataset.get_private_path().glob("*.csv")))
mock = pd.concat(pd.read_csv(p) for p in sorted(dataset.get_mock_path().glob("*.csv")))
print(f"{len(private)} private rows stay here; {len(mock)} mock rows are public")
mock.head()""",
        ),
        (
            "md",
            """## 3. Wait for the data scientist's job

Now run `ds.ipynb`. The DS explores your mock data, simulates the Flower app on it and then
**submits** it: the project's code is copied into your datasite's job inbox
(`datasites/<you>/app_data/rds/jobs/`). Nothing runs until you approve it.

The cell below waits for a job *pending code review*. It shows its progress and gives up
after `TIMEOUT` seconds (run it again to keep waiting).""",
        ),
        ("code", WAIT_HELPER),
        (
            "code",
            r"""pending = wait_until(
    "a job from the data scientist",
    lambda: do_admin.job.get_all(status="pending_code_review"),
    hint="Run ds.ipynb up to step 6 (submit the job), then run this cell again.",
)
for j in pending:
    print(j)
job = pending[-1]  # the newest""",
        ),
        (
            "md",
            """## 4. Review the code

Read every file the DS submitted: `main.py` (generated by `syft_flwr.bootstrap`),
`pyproject.toml`, and the Flower app. Check what leaves your datasite: here the ClientApp
replies with counts, sums and histogram counts per outcome, never rows.""",
        ),
        (
            "code",
            r"""print(f"job {job.uid}: {job.name!r} from {job.submitter}")
print(f"dataset: {job.dataset_name}, entrypoint: {job.entrypoint}")
print(f"code sha256: {job.code_sha256}\n")
code_text = job.show_user_code()""",
        ),
        (
            "md",
            """## 5. Approve (or reject)

Approving pins the hash of the code as you reviewed it: if a single byte changes afterwards,
the runner refuses to run it. If you do not like what you read, reject it instead, with a
reason the DS will see:

```python
do_admin.job.reject(job, reason="the ClientApp sends raw rows; send aggregates only")
```""",
        ),
        (
            "code",
            r"""do_admin.job.approve(job)
print(do_admin.job.get(uid=job.uid))""",
        ),
        (
            "md",
            """## 6. Run the job on your private data

`run_private` runs the job's `main.py` with your own Python, with `DATA_DIR` pointing at your
private data. The job **serves the ClientApp**: it waits for the DS's Flower queries (files
dropped into your datasite), answers each with aggregate statistics, and ends when the DS's
aggregator sends its stop message. This cell therefore runs until the DS has run step 7 of
`ds.ipynb`. (With `blocking=False` it would return at once with a handle that has `.wait()`.)""",
        ),
        (
            "code",
            r"""run = do_admin.run_private(job, blocking=True, timeout=TIMEOUT)
print(run)
print("job status:", do_admin.job.get(uid=job.uid).status)""",
        ),
        (
            "md",
            """## 7. Read the logs

The job's standard output and error stay in your private folder. Read them before you share
anything.""",
        ),
        (
            "code",
            r"""logs = do_admin.job.show_logs(job)
if run.status != "completed":
    raise RuntimeError(
        f"the job ended as {run.status} ({run.reason}); the logs above say why. "
        "If the data scientist never started the aggregator, the job stopped after its "
        "idle timeout."
    )""",
        ),
        (
            "md",
            """## 8. Share the results

Until you share them, the job's outputs and logs are yours alone. `share_results` publishes
the run's `output/` folder and its logs to the job's `results/` folder, where the DS can read
them.""",
        ),
        (
            "code",
            r"""results = do_admin.job.share_results(job)
print("shared:", results)
for path in sorted(results.rglob("*")):
    if path.is_file():
        print("  ", path.relative_to(results))""",
        ),
        (
            "md",
            """## 9. The audit log

Every decision on your datasite was recorded: the dataset you published, the job's arrival,
your approval, each run and what you shared. Each line carries the hash of the line before
it, so an edited, removed or reordered line is detected (`audit_log()` raises).""",
        ),
        (
            "code",
            r"""entries = do_admin.audit_log()
print(f"{len(entries)} audit entries, hash chain intact")
hidden = {"seq", "at", "actor", "event", "job_id", "prev"}


def details(entry):
    return ", ".join(
        f"{k}={str(v)[:16] + '…' if k.endswith('sha256') and v else v}"
        for k, v in entry.items()
        if k not in hidden and v not in (None, [], "")
    )


pd.DataFrame(
    {
        "seq": [e["seq"] for e in entries],
        "time (UTC)": [e["at"][11:19] for e in entries],
        "event": [e["event"] for e in entries],
        "job": [e.get("job_id", "") for e in entries],
        "details": [details(e) for e in entries],
    }
).set_index("seq")""",
        ),
    ]


# -- the data scientist ---------------------------------------------------------------------------

DS_CELLS: list[tuple[str, str]] = [
    (
        "md",
        """# Data scientist: federated statistics of diabetes data you never see

You are **ds@openmined.org**. Two hospitals (data owners **do1** and **do2**) each hold part of
the Pima Indians Diabetes data. You want histograms and per-outcome statistics over *all*
their patients, but their rows never leave their datasites. You will

1. log into both datasites as a **guest**,
2. explore their **mock** data (fake rows, same columns) with pandas,
3. look at the **Flower app** that computes the statistics,
4. **bootstrap** it for this network,
5. **simulate** it on the mock data,
6. **submit** it as a job to both data owners and wait for their approval,
7. run the **aggregator**, which queries the data owners' running jobs,
8. look at the **figures**, next to those of the simulation.

Start `do1.ipynb` and `do2.ipynb` first (up to the cell that waits for a job): this notebook
waits for them to publish their datasets.

![the network](../images/network.png)""",
    ),
    ("code", SETUP),
    ("code", WAIT_HELPER),
    (
        "md",
        """## 1. Log into the data owners' datasites as a guest

`setup_rds_server` joins the network as you. `init_session(host=...)` opens a session with
another party's datasite: you are a **guest** there, so you can read what they publish and
submit jobs, but not approve, run or read private data. The cell waits until both data
owners have published the dataset.""",
    ),
    (
        "code",
        r'''from syft_flwr.rds import setup_rds_server

ds = setup_rds_server(email=DS_EMAIL, root_dir=ROOT, key=NETWORK_KEY, reset=True)


def published(host):
    """The dataset on host's datasite, or None while it is not published yet."""
    try:
        return ds.init_session(host=host).dataset.get(name=DATASET)
    except (FileNotFoundError, LookupError):
        return None


for host in DO_EMAILS:
    wait_until(
        f"{host} to publish {DATASET}",
        lambda: published(host),
        hint=f"Run the notebook of {host} up to step 2 (publish the dataset) first.",
    )

guests = {host: ds.init_session(host=host) for host in DO_EMAILS}
for host, guest in guests.items():
    print(guest, "| admin:", guest.is_admin)
    assert not guest.is_admin''',
    ),
    (
        "md",
        """## 2. Explore the mock data

Each data owner published a README and a few mock rows with the same columns as the private
data. Use them to learn the schema and to write and test your code. The private path is
refused: you are a guest.""",
    ),
    (
        "code",
        r"""datasets = {host: guest.dataset.get(name=DATASET) for host, guest in guests.items()}
mock_paths = [datasets[host].get_mock_path() for host in DO_EMAILS]
for host, dataset in datasets.items():
    print(dataset)
    print("   mock files in", dataset.get_mock_path())

display(Markdown(datasets[DO_EMAILS[0]].description))""",
    ),
    (
        "code",
        r"""mock = pd.concat(
    [
        pd.read_csv(csv).assign(datasite=host)
        for host, path in zip(DO_EMAILS, mock_paths)
        for csv in sorted(path.glob("*.csv"))
    ],
    ignore_index=True,
)
print(f"{len(mock)} mock rows; rows per datasite and outcome (y = 1: diabetes):")
display(mock.groupby(["datasite", "y"]).size().unstack())
mock.drop(columns="datasite").groupby("y").mean().round(1)""",
    ),
    (
        "code",
        r"""try:
    datasets[DO_EMAILS[0]].get_private_path()
    raise AssertionError("a guest must not get the private path")
except PermissionError as refused:
    print("PermissionError:", refused)""",
    ),
    (
        "md",
        """## 3. The Flower project

`fed-analytics-diabetes` is an ordinary Flower app: a **ServerApp** (you, the aggregator)
sends a query to every datasite, each datasite's **ClientApp** replies with counts, sums and
histogram counts per outcome, and the ServerApp adds them up and writes
`figures/<feature>_histogram.png` and `figures/summary.json`.

You work on a copy in your working folder, so the repository stays untouched.

![project layout](../images/project_layout.png)

The one change from a plain Flower app: the ClientApp finds its data with
`syft_flwr.utils.get_syftbox_dataset_path()`. In a simulation it points at a datasite's mock
data; in a data owner's job, at the private data.""",
    ),
    (
        "code",
        r"""import shutil

from IPython.display import Code

APP = "fed-analytics-diabetes"
PROJECT = ROOT / "ds_project" / APP
OUTPUTS = ROOT / "ds_outputs"  # what you keep of the simulation
for folder in (PROJECT, OUTPUTS):
    if folder.exists():
        shutil.rmtree(folder)
shutil.copytree(
    REPO / APP,
    PROJECT,
    ignore=shutil.ignore_patterns(
        "__pycache__", "main.py", "figures", "weights", "simulation_logs"
    ),
)
print(f"working copy: {PROJECT}")
for path in sorted(PROJECT.rglob("*")):
    print("  ", path.relative_to(PROJECT))

client_app = PROJECT / "fed_analytics_diabetes" / "client_app.py"
display(Code(filename=str(client_app), language="python"))""",
    ),
    (
        "md",
        """## 4. Bootstrap

`syft_flwr.bootstrap` turns the Flower app into a syft_flwr project for this network: it
writes `[tool.syft_flwr]` (a unique app name, the aggregator, the datasites) into
`pyproject.toml`, keeping every other byte, and generates `main.py`, the entrypoint every
party runs.""",
    ),
    (
        "code",
        r"""import tomllib

import syft_flwr

syft_flwr.bootstrap(PROJECT, aggregator=DS_EMAIL, datasites=DO_EMAILS, overwrite=True)
table = tomllib.loads((PROJECT / "pyproject.toml").read_text())["tool"]["syft_flwr"]
print("[tool.syft_flwr]")
for key, value in table.items():
    print(f"{key} = {value!r}")
display(Code(filename=str(PROJECT / "main.py"), language="python"))""",
    ),
    (
        "md",
        """## 5. Simulate on the mock data

`syft_flwr.run` runs the whole federation on this machine: one thread per datasite serving
the ClientApp on that datasite's mock data, and one for the ServerApp, talking through files
exactly as in the real run. Logs go to `simulation_logs/`, figures to `figures/`.

The figures are moved to `ds_outputs/mock_figures` afterwards, so you can compare them with
the real ones, and so the job you submit carries only code.""",
    ),
    (
        "code",
        r"""result = syft_flwr.run(PROJECT, mock_paths)
print(f"simulation: {result.rounds} round(s) in {result.duration:.1f} s")
print("datasites that answered, per round:", result.participants)

OUTPUTS.mkdir(parents=True, exist_ok=True)
MOCK_FIGURES = OUTPUTS / "mock_figures"
shutil.move(PROJECT / "figures", MOCK_FIGURES)
shutil.move(PROJECT / "simulation_logs", OUTPUTS / "simulation_logs")
print("mock figures kept in", MOCK_FIGURES)
for path in sorted(MOCK_FIGURES.iterdir()):
    print("  ", path.name)""",
    ),
    (
        "code",
        r"""from IPython.display import Image

display(Image(filename=str(MOCK_FIGURES / "Glucose_histogram.png"), width=600))""",
    ),
    (
        "md",
        """## 6. Submit the job and wait for approval

`job.submit` copies the project into each data owner's job inbox. Each data owner reviews
the code, approves it and starts it on their private data (steps 3 to 6 of their notebooks).
The cell after it waits until both jobs are running; if a data owner rejects the job, it
stops and shows their reason.""",
    ),
    (
        "code",
        r"""jobs = {}
for host, guest in guests.items():
    jobs[host] = guest.job.submit(
        name="diabetes-statistics",
        user_code_path=PROJECT,
        dataset_name=DATASET,
        entrypoint="main.py",
        description="per-outcome counts, means and histograms of Glucose, BMI and Age",
    )
    print(f"{host}: job {jobs[host].uid} is {jobs[host].status}")""",
    ),
    (
        "code",
        r"""def statuses():
    return {host: guests[host].job.get(uid=job.uid) for host, job in jobs.items()}


def all_running():
    current = statuses()
    for host, job in current.items():
        if job.status == "rejected":
            raise RuntimeError(f"{host} rejected the job: {job.reason}")
        if job.status in ("completed", "failed", "shared"):
            raise RuntimeError(
                f"{host}'s job already ended ({job.status}) before the aggregator started; "
                "ask them to run it again (run_private), then run this cell again"
            )
    return all(job.status == "running" for job in current.values())


wait_until(
    "both data owners to approve and start the job",
    all_running,
    hint="Each data owner runs steps 3 to 6 of their notebook (review, approve, run_private).",
)
for host, job in statuses().items():
    print(f"{host}: {job.status}")""",
    ),
    (
        "md",
        """## 7. Run the aggregator

The aggregator is the ServerApp, run as `python main.py --active` with your identity file
(`SYFTBOX_CLIENT_CONFIG_PATH`). It writes one query per datasite into their inboxes, collects
the replies the data owners' jobs write back, adds them up, writes the figures, and finally
sends the stop message that ends the jobs. Its output appears below as it runs; exit code 0
means every datasite answered.""",
    ),
    (
        "code",
        r"""import subprocess
import threading

env = dict(os.environ, SYFTBOX_CLIENT_CONFIG_PATH=str(ds.client.config_path), PYTHONUNBUFFERED="1")
aggregator = subprocess.Popen(
    [sys.executable, "main.py", "--active"],
    cwd=PROJECT,
    env=env,
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
    text=True,
)
timer = threading.Timer(TIMEOUT, aggregator.kill)  # give up after TIMEOUT seconds
timer.start()
try:
    for line in aggregator.stdout:
        print(line, end="")
except BaseException:  # e.g. interrupted: do not leave it running
    aggregator.kill()
    raise
finally:
    timer.cancel()
    exit_code = aggregator.wait()

if exit_code != 0:
    why = {
        1: "the ServerApp failed",
        3: "a datasite did not answer or failed (is its job running?)",
        -9: f"it did not finish within {TIMEOUT:g} s and was stopped",
    }.get(exit_code, "see its output above")
    raise RuntimeError(f"the aggregator exited with code {exit_code}: {why}")
print(f"\naggregator finished (exit code {exit_code})")""",
    ),
    (
        "md",
        """## 8. The figures: mock data vs. private data

Left, the simulation on the mock rows; right, the real run over both hospitals' private
rows. You never saw a private row: only the aggregates the data owners approved.""",
    ),
    (
        "code",
        r"""import base64

from IPython.display import HTML


def img(path):
    data = base64.b64encode(Image(filename=str(path)).data).decode()
    return f'<img src="data:image/png;base64,{data}" style="width:100%">'


FIGURES = PROJECT / "figures"
rows = "".join(
    f"<tr><td>{img(MOCK_FIGURES / name)}</td><td>{img(FIGURES / name)}</td></tr>"
    for name in ("Glucose_histogram.png", "BMI_histogram.png", "Age_histogram.png")
)
display(
    HTML(
        '<table style="width:100%"><tr><th style="text-align:center">mock data (simulation)</th>'
        '<th style="text-align:center">private data (the real run)</th></tr>' + rows + "</table>"
    )
)""",
    ),
    (
        "code",
        r"""import json

real = json.loads((FIGURES / "summary.json").read_text())
simulated = json.loads((MOCK_FIGURES / "summary.json").read_text())
print("datasites that answered:", real["answered"])


def table(summary):
    out = {"patients": {o: n for o, n in summary["rows"].items()}}
    for feature in ("Glucose", "BMI", "Age"):
        out[f"mean {feature}"] = {
            o: t["mean"] for o, t in summary["features"][feature]["totals"].items()
        }
    return pd.DataFrame(out).rename(index={"0": "no diabetes (y=0)", "1": "diabetes (y=1)"})


pd.concat({"mock data": table(simulated), "private data": table(real)}).round(1)""",
    ),
    (
        "md",
        """## 9. What the data owners shared

After their jobs ended, the data owners read the logs and shared the results (step 8 of
their notebooks). You can read those, and nothing else of their runs.""",
    ),
    (
        "code",
        r"""def shared():
    return all(guests[h].job.get(uid=j.uid).status == "shared" for h, j in jobs.items())


wait_until(
    "both data owners to share the job's results",
    shared,
    hint="Each data owner runs step 8 of their notebook (share_results).",
)
for host, job in jobs.items():
    results = guests[host].job.get_results(job)
    run = json.loads((results / "run.json").read_text())
    print(f"{host}: run {run['n']} on {run['kind']} data, {run['status']} in {run['duration_s']} s")
    for path in sorted(results.rglob("*")):
        if path.is_file():
            print("   ", path.relative_to(results))""",
    ),
]


def main() -> int:
    outputs = {
        "do1.ipynb": notebook(do_cells(1)),
        "do2.ipynb": notebook(do_cells(2)),
        "ds.ipynb": notebook(DS_CELLS),
    }
    for name, nb in outputs.items():
        nbformat.validate(nb)
        nbformat.write(nb, HERE / name)
        print(f"wrote {HERE / name} ({len(nb.cells)} cells)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
