"""Subprocesses the benchmark owns: started with a log file each, stopped in order, always.

Each child gets a session of its own, so a Ctrl-C in the terminal reaches only the benchmark,
which then stops the children itself (uvicorn first gets SIGINT, its graceful shutdown, then
SIGTERM and SIGKILL if it lingers). On Linux each child also asks the kernel for SIGTERM if the
benchmark dies without cleaning up (PR_SET_PDEATHSIG), so no server outlives a `kill -9`.
"""

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# The service's own variables: never inherited from the caller's shell, so a stray
# NETVALVE_API_KEY or DATABASE_URL cannot change what is measured.
_SERVICE_PREFIXES = (
    "NETVALVE_",
    "DATABASE_",
    "MEDUSA_",
    "ENVIRONMENT",
    "CORS_",
    "SANDBOX_",
    "STOREFRONT_",
    "ADMIN_",
    "METRICS_",
    "RATE_LIMIT_",
    "WEBHOOK_",
    "RECONCILE_",
    "LOG_LEVEL",
    "TRUSTED_PROXIES",
    "IDEMPOTENCY_",
    "UNKNOWN_OUTCOME_",
    "SHUTDOWN_",
)
_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A loopback port that was free a moment ago (the child binds it right away)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def child_env(variables: Mapping[str, str]) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(_SERVICE_PREFIXES)}
    env.update(PYTHONPATH=str(PROJECT_ROOT), PYTHONUNBUFFERED="1")
    env.update(variables)
    return env


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: SIGTERM when the benchmark dies."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class ManagedProcess:
    """One child process, its output in `log_path`."""

    def __init__(
        self, name: str, argv: list[str], *, env: Mapping[str, str], cwd: Path, log_path: Path
    ) -> None:
        self.name = name
        self.log_path = log_path
        self._log = log_path.open("wb")
        try:
            self.process = subprocess.Popen(  # noqa: S603 (argv is built here, not from input)
                argv,
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # Safe here: children start between asyncio.run calls, when this process runs
                # no other thread (asyncio.run joins its executor's threads on the way out).
                preexec_fn=_die_with_parent,
            )
        except BaseException:
            self._log.close()
            raise

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_http_ok(self, url: str, timeout: float = 60.0) -> None:
        """Poll `url` until it answers 200; fail early, with the log's tail, if the child dies."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode} before it was ready:\n"
                    f"{self.tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=2.0).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.name} was not ready within {timeout:.0f} s:\n{self.tail()}"
                )
            time.sleep(0.1)

    def stop(self, grace: float = 20.0) -> int | None:
        """SIGINT (uvicorn's graceful shutdown), then SIGTERM, then SIGKILL; the exit code."""
        try:
            for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                if not self.alive():
                    break
                with contextlib.suppress(ProcessLookupError):
                    self.process.send_signal(sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(wait)
            return self.process.poll()
        finally:
            self._log.close()


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no {field}")


def rss_mib(pid: int) -> float:
    """Resident set size now."""
    return _status_kib(pid, "VmRSS") / 1024


def peak_rss_mib(pid: int) -> float:
    """The kernel's high-water mark of the resident set over the process's whole life."""
    return _status_kib(pid, "VmHWM") / 1024


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far (its own threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    # After the ")" that closes the command name: state is field 3, utime 14 and stime 15.
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (uvicorn's workers under its supervisor), from each
    /proc/<pid>/stat: this kernel has no /proc/<pid>/task/<tid>/children."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="ascii")
        except OSError:
            continue  # exited meanwhile
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of `pid` and of its children: a supervisor and the workers it runs."""
    total = 0.0
    for process in (pid, *children(pid)):
        with contextlib.suppress(OSError):
            total += cpu_seconds(process)
    return total
