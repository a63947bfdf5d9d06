"""Each command a newcomer types checks its settings first: a bad one, or a database that cannot
be reached, ends it non-zero with exactly one line on stderr that names the variable and holds
no secret value (issue 12, section 3)."""

import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import PROJECT_ROOT
from tests.fixtures.environment import bare_env
from tests.fixtures.log_audit import audit_text
from tests.fixtures.ports import free_port

SECRET = "hunter2-never-print-me-0123456789"
LAUNCHER = [sys.executable, "-m", "app.dev"]
ALEMBIC_WRAPPER = [*LAUNCHER, "alembic", "upgrade", "head"]
UVICORN = [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app", "--port", "0"]
SANDBOX = [sys.executable, "-m", "app.sandbox"]
Started = subprocess.CompletedProcess[str]
DEV = {"ENVIRONMENT": "development", "NETVALVE_ENVIRONMENT": "sandbox"}


def unreachable_url() -> str:
    return f"postgresql+asyncpg://netvalve:{SECRET}@127.0.0.1:{free_port()}/netvalve"


def start(command: list[str], tmp_path: Path, **variables: str) -> Started:
    """Runs `command` in `tmp_path`, with only `variables` configured."""
    env = bare_env(PYTHONPATH=str(PROJECT_ROOT), DEV_DATA_DIR=str(tmp_path / "data"), **variables)
    started = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    audit_text(" ".join(command[1:]), started.stdout + started.stderr)
    return started


def start_with_example_env(command: list[str], tmp_path: Path) -> Started:
    """`cp .env.example .env`, then `command`."""
    shutil.copy(PROJECT_ROOT / ".env.example", tmp_path / ".env")
    return start(command, tmp_path)


def assert_one_line(started: Started, *names: str, secrets: tuple[str, ...] = (SECRET,)) -> str:
    assert started.returncode != 0, started.stdout
    lines = started.stderr.splitlines()
    assert len(lines) == 1, started.stderr
    for name in names:
        assert name in lines[0], lines[0]
    for secret in secrets:
        assert secret not in started.stderr + started.stdout
    return lines[0]


@pytest.mark.parametrize(
    "command", [LAUNCHER, ALEMBIC_WRAPPER, UVICORN], ids=["make-run", "alembic", "uvicorn"]
)
def test_the_example_env_file_is_one_line(command, tmp_path):
    # `cp .env.example .env && make run` used to end in a 131-line traceback from Alembic.
    started = start_with_example_env(command, tmp_path)

    line = assert_one_line(started, secrets=("change-me",))
    assert "NETVALVE_CLIENT_ID" in line or "DATABASE_URL at localhost:5432" in line


@pytest.mark.parametrize("command", [LAUNCHER, ALEMBIC_WRAPPER], ids=["make-run", "alembic"])
def test_a_database_that_cannot_be_reached_is_one_line_with_host_and_port(command, tmp_path):
    url = unreachable_url()
    started = start(command, tmp_path, DATABASE_URL=url, **DEV)

    line = assert_one_line(started, "DATABASE_URL", url.split("@")[1].split("/")[0])
    assert "cannot reach" in line


@pytest.mark.parametrize(
    "command", [LAUNCHER, ALEMBIC_WRAPPER, UVICORN], ids=["make-run", "alembic", "uvicorn"]
)
def test_a_database_url_without_asyncpg_is_named(command, tmp_path):
    started = start(command, tmp_path, DATABASE_URL=f"postgresql://u:{SECRET}@h/db", **DEV)

    assert_one_line(started, "DATABASE_URL")


def test_the_launcher_validates_a_users_variable_on_the_embedded_database(tmp_path):
    for _ in range(3):  # a busy machine can keep the embedded server from starting in time
        started = start(LAUNCHER, tmp_path, STOREFRONT_API_KEYS=SECRET[:12])
        if "did not start in time" not in started.stderr:
            break

    assert_one_line(started, "STOREFRONT_API_KEYS", secrets=(SECRET[:12],))
    assert "Embedded PostgreSQL stopped." in started.stdout


def test_uvicorn_names_a_weak_key_without_echoing_it(tmp_path):
    started = start(
        UVICORN, tmp_path, DATABASE_URL=unreachable_url(), ADMIN_API_KEYS="tiny-key-77", **DEV
    )

    assert_one_line(started, "ADMIN_API_KEYS", secrets=(SECRET, "tiny-key-77"))


@pytest.mark.parametrize(
    ("variable", "value"),
    [("SANDBOX_PORT", "eighty"), ("SANDBOX_WEBHOOK_DUPLICATE_RATE", "2")],
)
def test_the_sandbox_names_a_bad_variable(variable, value, tmp_path):
    started = start(SANDBOX, tmp_path, NETVALVE_API_KEY=SECRET, **{variable: value})

    assert_one_line(started, variable)


def test_uvicorn_with_the_database_down_says_so_in_one_line_and_stays_ready_to_recover(tmp_path):
    # uvicorn serves without its database (/health/ready is 503 until it is back), but it used to
    # log a traceback every second from the webhook worker instead of saying so once.
    url, port = unreachable_url(), free_port()
    env = bare_env(PYTHONPATH=str(PROJECT_ROOT), DATABASE_URL=url, **DEV)
    command = [*UVICORN[:-2], "--port", str(port)]
    with subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as server:
        try:
            ready = None
            for _ in range(100):
                try:
                    ready = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=2)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            time.sleep(4)  # several webhook-worker passes
        finally:
            server.terminate()
        output, _ = server.communicate(timeout=30)
    audit_text("uvicorn without its database", output)

    assert ready is not None, output
    assert ready.status_code == 503, output
    address = url.split("@")[1]
    said = [line for line in output.splitlines() if "app.database_unreachable" in line]
    assert len(said) == 1, output
    assert address in said[0]
    assert "Traceback" not in output, output
    assert "worker_failed" not in output, output
    assert output.count("worker.database_unreachable") <= 2, output  # once per worker at most
    assert SECRET not in output


# Any settings read, engine, client or app built while `app.main` is imported fails the import.
IMPORT_BUILDS_NOTHING = """
import logging, sys
import fastapi, httpx, pydantic_settings, sqlalchemy.ext.asyncio

def refuse(what):
    def built(*args, **kwargs):
        raise SystemExit(f"importing app.main built {what}")
    return built

pydantic_settings.BaseSettings.__init__ = refuse("settings")
sqlalchemy.ext.asyncio.create_async_engine = refuse("an engine")
httpx.AsyncClient.__init__ = refuse("an HTTP client")
fastapi.FastAPI.__init__ = refuse("an app")
handlers = list(logging.getLogger().handlers)

import app.main

assert not hasattr(app.main, "app"), "a module-level app"
assert logging.getLogger().handlers == handlers, "logging configured"
print("built nothing")
"""


def test_importing_app_main_builds_nothing(tmp_path):
    # No variables at all: a settings read would fail even without the refusals above.
    started = start([sys.executable, "-c", IMPORT_BUILDS_NOTHING], tmp_path)

    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == "built nothing"
