"""Helpers of the RDS tests: a network with one data owner, a data scientist and a dataset."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from syft_flwr.rds import RDSServer, Session, setup_rds_server

DO = "do1@openmined.org"
DS = "ds@openmined.org"
DATASET = "pima-indians-diabetes-database"
SCRIPTS = Path(__file__).resolve().parent / "scripts"

PRIVATE_CSV = "Glucose,Age,Outcome\n148,50,1\n85,31,0\n183,32,1\n89,21,0\n"
MOCK_CSV = "Glucose,Age,Outcome\n100,40,0\n"

# Reads DATA_DIR, writes OUTPUT_DIR: the tiny job of most tests.
COUNT_ROWS = """\
import os
from pathlib import Path

data = Path(os.environ["DATA_DIR"])
rows = (data / "diabetes.csv").read_text().strip().splitlines()[1:]
out = Path(os.environ["OUTPUT_DIR"])
(out / "count.txt").write_text(str(len(rows)))
(out / "data_dir.txt").write_text(str(data))
print(f"counted {len(rows)} rows")
"""


@dataclass
class Net:
    """A small network: the data owner's and the data scientist's views of datasite DO."""

    root: Path
    do: RDSServer
    admin: Session
    ds: RDSServer
    guest: Session
    private_dir: Path
    mock_dir: Path


def make_net(tmp_path: Path, **server_options) -> Net:
    """A network under ``tmp_path``: DO with the diabetes dataset, DS with a guest session."""
    root = tmp_path / "net"
    do = setup_rds_server(email=DO, root_dir=root, key="local_syftbox_network", **server_options)
    admin = do.init_session(host=DO)
    private_dir, mock_dir, readme = make_dataset_files(tmp_path / "dataset")
    admin.dataset.create(
        name=DATASET,
        path=private_dir,
        mock_path=mock_dir,
        summary="Diabetes diagnostics of Pima Indian women",
        description_path=readme,
    )
    ds = setup_rds_server(email=DS, root_dir=root, key="local_syftbox_network")
    guest = ds.init_session(host=DO)
    return Net(root, do, admin, ds, guest, private_dir, mock_dir)


def make_dataset_files(base: Path) -> tuple[Path, Path, Path]:
    private_dir, mock_dir = base / "private", base / "mock"
    private_dir.mkdir(parents=True)
    mock_dir.mkdir(parents=True)
    (private_dir / "diabetes.csv").write_text(PRIVATE_CSV)
    (mock_dir / "diabetes.csv").write_text(MOCK_CSV)
    readme = base / "README.md"
    readme.write_text("# Pima Indians Diabetes\n\nOne row per patient.\n")
    return private_dir, mock_dir, readme


def write_code(folder: Path, main: str = COUNT_ROWS, **files: str) -> Path:
    """A job's code folder with main.py and any other ``name=content`` files."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "main.py").write_text(main)
    for name, content in files.items():
        (folder / name).write_text(content)
    return folder


def submit(net: Net, tmp_path: Path, main: str = COUNT_ROWS, name: str = "count-rows", **files):
    code = write_code(tmp_path / f"code-{name}", main, **files)
    return net.guest.job.submit(
        name=name, user_code_path=code, dataset_name=DATASET, entrypoint="main.py"
    )


def approved(net: Net, tmp_path: Path, main: str = COUNT_ROWS, name: str = "count-rows"):
    job = submit(net, tmp_path, main, name)
    net.admin.job.approve(job)
    return job


def run_script(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run one of scripts/ in a fresh Python process; fail the test with its stderr if it fails."""
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"{args[0]} failed:\n{proc.stderr[-3000:]}"
    return proc
