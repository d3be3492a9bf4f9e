"""The data scientist's side of the whole flow, in its own process.

usage: ds_flow.py ROOT CODE_DIR DATASET  -> prints one JSON line with what it saw
"""

import json
import sys
from pathlib import Path

from syft_flwr.rds import setup_rds_server

root, code, dataset = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
ds = setup_rds_server(email="ds@openmined.org", root_dir=root, key="local_syftbox_network")
guest = ds.init_session(host="do1@openmined.org")
mock = guest.dataset.get(name=dataset).get_mock_path()
job = guest.job.submit(
    name="count-rows", user_code_path=code, dataset_name=dataset, entrypoint="main.py"
)


def refusal(action) -> str:
    """What a guest gets when it tries ``action``: "<exception type>: <message>"."""
    try:
        action()
    except Exception as exc:  # the test checks the type and the message
        return f"{type(exc).__name__}: {exc}"
    return "allowed"


refused = {
    "private_path": refusal(lambda: guest.dataset.get(name=dataset).get_private_path()),
    "results_before_sharing": refusal(lambda: guest.job.get_results(job)),
    "approve": refusal(lambda: guest.job.approve(job)),
    "run_private": refusal(lambda: guest.run_private(job)),
    "share": refusal(lambda: guest.job.share_results(job)),
}
guest.job.wait(job, status="shared", timeout=45, poll=0.2)
results = guest.job.get_results(job)
print(
    json.dumps(
        {
            "uid": job.uid,
            "status": guest.job.get(uid=job.uid).status,
            "mock_files": sorted(p.name for p in mock.iterdir()),
            "count": (results / "output" / "count.txt").read_text(),
            "stdout": (results / "logs" / "stdout.log").read_text(),
            "run": json.loads((results / "run.json").read_text()),
            "refused": refused,
        }
    )
)
