"""netvalve-gateway.

Importing the package first points prometheus_client at a directory that every worker of one
server run shares, because the library picks how it stores values when it is first imported:
under `uvicorn --factory app.main:create_app --workers N` each worker is a child of one
supervisor, and /metrics must add up all of them. A PROMETHEUS_MULTIPROC_DIR set by the operator
is used as it is.
"""

import contextlib
import multiprocessing
import os
import shutil
import stat
import tempfile
from pathlib import Path

VERSION = "0.1.0"

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus_client itself, too
METRICS_ROOT = "netvalve-gateway-metrics"


def _run_id(pid: int) -> str | None:
    """`pid-starttime` of a live process (the start time tells a reused pid apart); None if it
    is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return str(pid)
    return f"{pid}-{stat.rsplit(')', 1)[1].split()[19]}"


def _share_metrics_between_workers() -> None:
    if os.environ.get(MULTIPROCESS_ENV):
        return
    supervisor = multiprocessing.parent_process()
    if supervisor is None or supervisor.pid is None:
        return  # one process: its own registry is the whole view
    run_id = _run_id(supervisor.pid)
    if run_id is None:
        return
    root = Path(tempfile.gettempdir()) / METRICS_ROOT
    root.mkdir(mode=0o700, exist_ok=True)
    info = root.lstat()
    if stat.S_ISLNK(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
        # Another user's directory in the shared temporary directory (or a link to one) could
        # feed /metrics any values: each worker keeps its own registry instead.
        return
    for stale in root.iterdir():
        pid = stale.name.split("-", 1)[0]
        if pid.isdigit() and _run_id(int(pid)) != stale.name:
            with contextlib.suppress(OSError):
                shutil.rmtree(stale)  # the server run that wrote it has ended
    directory = root / run_id
    directory.mkdir(mode=0o700, exist_ok=True)
    os.environ[MULTIPROCESS_ENV] = str(directory)


_share_metrics_between_workers()
