"""`make run`'s launcher, as a newcomer runs it: no configuration, then Ctrl-C."""

import re
import signal
import subprocess
import sys
import time

import httpx
import psutil
import pytest

from tests.conftest import PROJECT_ROOT
from tests.fixtures.environment import bare_env
from tests.fixtures.log_audit import audit_text
from tests.fixtures.ports import free_port


def wait_until_serving(base: str, process: subprocess.Popen[str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the launcher exited early"
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.3)
    pytest.fail("the service did not start")


def read_banner(process: subprocess.Popen[str]) -> str:
    """What the launcher prints up to its "Press Ctrl-C" line."""
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("Press Ctrl-C"):
            return "".join(lines)
    pytest.fail("the launcher printed no banner:\n" + "".join(lines))


def postgres_processes(data_dir: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(attrs=("name", "cmdline")):
        if process.info["name"] == "postgres" and data_dir in " ".join(
            process.info["cmdline"] or []
        ):
            found.append(process)
    return found


def test_serves_docs_health_and_ready_with_no_configuration_then_stops_cleanly(tmp_path):
    port = free_port()
    env = bare_env(PORT=str(port), DEV_DATA_DIR=str(tmp_path), PYTHONPATH=str(PROJECT_ROOT))
    launcher = subprocess.Popen(
        [sys.executable, "-m", "app.dev"],
        cwd=tmp_path,  # no .env here: nothing configured
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(base, launcher)

        docs = httpx.get(f"{base}/docs", timeout=5)
        ready = httpx.get(f"{base}/health/ready", timeout=10)
        banner = read_banner(launcher)
        audit_text("make run", banner)
        sandbox = re.search(r"NetValve +in-process sandbox, (http://127\.0\.0\.1:\d+)", banner)
        assert sandbox, banner
        demo = httpx.get(f"{sandbox.group(1)}/hpf/demo", timeout=5)

        assert docs.status_code == 200
        assert "swagger-ui" in docs.text
        assert ready.status_code == 200, ready.text
        assert demo.status_code == 200
        assert postgres_processes(str(tmp_path))
    finally:
        launcher.send_signal(signal.SIGINT)
        output, _ = launcher.communicate(timeout=60)
        audit_text("make run", output)

    assert launcher.returncode == 0, output
    assert "Swagger UI  " + base + "/docs" in banner
    assert "Embedded PostgreSQL stopped." in output
    assert not [process for process in postgres_processes(str(tmp_path)) if process.is_running()]
