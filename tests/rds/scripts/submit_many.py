"""Submit COUNT jobs to do1 as EMAIL, as fast as possible.

usage: submit_many.py ROOT EMAIL COUNT CODE_DIR DATASET  -> prints the uids, one a line
"""

import sys
from pathlib import Path

from syft_flwr.rds import setup_rds_server

root, email, count, code, dataset = sys.argv[1:6]
guest = setup_rds_server(email=email, root_dir=Path(root)).init_session(host="do1@openmined.org")
for i in range(int(count)):
    job = guest.job.submit(name=f"job-{i}", user_code_path=code, dataset_name=dataset)
    print(job.uid, flush=True)
