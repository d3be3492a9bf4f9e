"""A data owner's process that starts a run without waiting for it, then ends.

usage: do_abandons_run.py ROOT UID MODE
  MODE "exit": a normal exit (atexit stops the run and records it)
  MODE "crash": os._exit (nothing recorded: the next owner session must notice)
Prints the job process's pid.
"""

import os
import sys
from pathlib import Path

from syft_flwr.rds import setup_rds_server

root, uid, mode = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
admin = setup_rds_server(email="do1@openmined.org", root_dir=root).init_session(
    host="do1@openmined.org"
)
handle = admin.run_private(uid, blocking=False, timeout=60)
print(handle.pid, flush=True)
if mode == "crash":
    os._exit(0)
