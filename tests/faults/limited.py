"""Run a Python script as if the disk were full past a few bytes.

    python limited.py BYTES script.py [args...]

``RLIMIT_FSIZE`` makes any write that would take a regular file past BYTES fail with EFBIG
("File too large"), which is what a program sees of a full disk at the worst moment: in the
middle of a file. SIGXFSZ is ignored, so the write fails instead of killing the process.
Both survive the ``exec`` into the script's interpreter. Pipes are not regular files: give
the process pipes for stdout and stderr to read what it says.
"""

import os
import resource
import signal
import sys

if __name__ == "__main__":
    limit = int(sys.argv[1])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
