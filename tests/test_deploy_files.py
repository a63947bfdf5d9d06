"""No Docker engine runs here, so the container files are checked against the code instead."""

import importlib
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from app import MULTIPROCESS_ENV
from app.core.config import Settings
from app.core.server import HTTP_PROTOCOL
from app.main import create_app
from app.sandbox.app import SandboxSettings
from tests.conftest import PROJECT_ROOT
from tests.fixtures.settings import make_settings

SERVICE_PORT = 8000
# Read by the `make run` launcher (app/dev/__main__.py) and the tests, not by Settings.
LAUNCHER_VARIABLES = {"HOST", "PORT", "DEV_DATA_DIR", "MEDUSA_DEMO", "RELOAD", "TEST_DATABASE_URL"}
METRICS_VARIABLES = {MULTIPROCESS_ENV}
SETTINGS_VARIABLES = {name.upper() for name in Settings.model_fields}
SANDBOX_VARIABLES = {name.upper() for name in SandboxSettings.model_fields}


def read(name: str) -> str:
    return (PROJECT_ROOT / name).read_text(encoding="utf-8")


def compose(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(read(name))
    return loaded


def command_words(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else command


def app_routes() -> set[str]:
    app = create_app(make_settings("postgresql+asyncpg://unused@127.0.0.1:1/unused"))
    return set(app.openapi()["paths"])


def assert_serves_the_factory(command: list[str]) -> None:
    """`uvicorn --factory <module>:<name>`, where the name is the code's app factory."""
    assert command[:3] == ["uvicorn", "--factory", "app.main:create_app"]
    module, _, name = command[2].partition(":")
    assert getattr(importlib.import_module(module), name) is create_app


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = read("Dockerfile").replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


class TestDockerfile:
    def test_multi_stage_with_uv_and_locked_dependencies(self):
        stages = [rest for keyword, rest in dockerfile_instructions() if keyword == "FROM"]
        assert len(stages) >= 2
        assert all(stage.startswith("python:3.11") for stage in stages)
        runs = " ".join(rest for keyword, rest in dockerfile_instructions() if keyword == "RUN")
        assert "uv sync --locked --no-dev" in runs

    def test_runs_as_a_non_root_user(self):
        users = [rest for keyword, rest in dockerfile_instructions() if keyword == "USER"]
        assert users
        assert users[-1] not in {"root", "0"}

    def test_serves_the_app_on_the_exposed_port_with_a_health_check(self):
        instructions = dict(dockerfile_instructions())
        assert instructions["EXPOSE"] == str(SERVICE_PORT)
        cmd = yaml.safe_load(instructions["CMD"])
        assert_serves_the_factory(cmd)
        assert cmd[cmd.index("--port") + 1] == str(SERVICE_PORT)
        health_url = re.search(r"http://127\.0\.0\.1:(\d+)(/[\w/]*)", instructions["HEALTHCHECK"])
        assert health_url
        assert health_url.group(1) == str(SERVICE_PORT)
        assert health_url.group(2) in app_routes()

    def test_copies_what_the_service_and_migrations_need(self):
        copied = " ".join(rest for keyword, rest in dockerfile_instructions() if keyword == "COPY")
        for path in ("pyproject.toml", "uv.lock", "alembic.ini", "alembic", "app"):
            assert path in copied
            assert (PROJECT_ROOT / path).exists()


@pytest.mark.parametrize("name", ["docker-compose.yml", "docker-compose.prod.yml"])
class TestComposeFiles:
    def test_variables_are_ones_the_code_reads(self, name):
        for service_name, service in compose(name)["services"].items():
            if service_name == "db":
                continue  # the postgres image's own variables
            for variable in service.get("environment", {}):
                known = SETTINGS_VARIABLES | LAUNCHER_VARIABLES | METRICS_VARIABLES
                assert variable in known, variable

    def test_app_publishes_the_service_port_and_checks_health(self, name):
        app = compose(name)["services"]["app"]
        published = [str(port).rsplit(":", 1)[-1] for port in app["ports"]]
        assert published == [str(SERVICE_PORT)]
        probe = " ".join(command_words(app["healthcheck"]["test"]))
        assert f"http://127.0.0.1:{SERVICE_PORT}/health" in probe


class TestDevCompose:
    def test_postgres_16_with_a_healthcheck_gates_the_app(self):
        services = compose("docker-compose.yml")["services"]
        assert services["db"]["image"] == "postgres:16"
        assert "pg_isready" in " ".join(command_words(services["db"]["healthcheck"]["test"]))
        assert services["app"]["depends_on"]["db"]["condition"] == "service_healthy"

    def test_app_migrates_on_start_against_the_compose_database(self):
        services = compose("docker-compose.yml")["services"]
        app = services["app"]
        # app.dev runs `alembic upgrade head` before it serves (see its `serve`).
        assert command_words(app["command"])[-2:] == ["-m", "app.dev"]
        db = services["db"]["environment"]
        expected = (
            f"postgresql+asyncpg://{db['POSTGRES_USER']}:{db['POSTGRES_PASSWORD']}"
            f"@db:5432/{db['POSTGRES_DB']}"
        )
        assert app["environment"]["DATABASE_URL"] == expected
        assert app["environment"]["PORT"] == str(SERVICE_PORT)


class TestProdCompose:
    def test_no_bind_mounts_and_env_from_a_file(self):
        for service in compose("docker-compose.prod.yml")["services"].values():
            assert "volumes" not in service
            assert service["env_file"] == ".env"

    def test_multi_worker_uvicorn_after_migrations(self):
        services = compose("docker-compose.prod.yml")["services"]
        command = command_words(services["app"]["command"])
        assert_serves_the_factory(command)
        assert int(command[command.index("--workers") + 1]) >= 2
        assert command[command.index("--port") + 1] == str(SERVICE_PORT)
        assert command_words(services["migrate"]["command"]) == ["alembic", "upgrade", "head"]
        assert services["app"]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )


def uvicorn_commands() -> dict[str, list[str]]:
    instructions = dict(dockerfile_instructions())
    prod = compose("docker-compose.prod.yml")["services"]["app"]["command"]
    return {"Dockerfile": yaml.safe_load(instructions["CMD"]), "prod": command_words(prod)}


@pytest.mark.parametrize("name", ["Dockerfile", "prod"])
def test_uvicorn_bounds_reads_and_leaves_forwarded_headers_to_the_app(name):
    # Run for real in tests/multiprocess/test_edge.py; this names the flags that make it so.
    command = uvicorn_commands()[name]
    assert command[command.index("--http") + 1] == HTTP_PROTOCOL
    assert "--no-proxy-headers" in command
    assert "--forwarded-allow-ips" not in command


class TestEnvExample:
    def variables(self) -> list[str]:
        return re.findall(r"^([A-Z][A-Z0-9_]*)=", read(".env.example"), flags=re.MULTILINE)

    def test_lists_every_setting_once(self):
        variables = self.variables()
        assert len(variables) == len(set(variables))
        assert SETTINGS_VARIABLES <= set(variables)
        assert SANDBOX_VARIABLES <= set(variables)
        assert set(variables) <= SETTINGS_VARIABLES | SANDBOX_VARIABLES | LAUNCHER_VARIABLES

    def test_each_variable_has_a_comment_above_it(self):
        lines = read(".env.example").splitlines()
        for index, line in enumerate(lines):
            if re.match(r"^[A-Z][A-Z0-9_]*=", line):
                assert lines[index - 1].startswith("# "), line


class TestReadmeAndCi:
    def test_readme_opens_with_the_two_commands(self):
        first_block = re.search(r"```(?:bash|sh)?\n(.*?)```", read("README.md"), flags=re.S)
        assert first_block
        assert first_block.group(1).split() == ["make", "run", "make", "test"]

    def test_ci_runs_exactly_the_readme_test_command(self):
        commands = [
            line
            for line in read(".ci/run").splitlines()
            if line.strip() and not line.startswith(("#", "set ", "cd "))
        ]
        assert commands == ["make test"]
        assert Path(PROJECT_ROOT / ".ci/run").stat().st_mode & 0o111
