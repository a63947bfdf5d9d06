"""`make run` keeps what the user set, in the environment or in `.env`, and says what it made."""

import os

import pytest

from app.dev.__main__ import DevSetup, user_variables


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # DevSetup exports what it generates: into a copy, so nothing leaks into later tests.
    monkeypatch.setattr(os, "environ", dict(os.environ))
    for name in ("NETVALVE_WEBHOOK_AUTH_VALUES", "NETVALVE_CLIENT_ID", "LOG_LEVEL"):
        os.environ.pop(name, None)
    return tmp_path


def test_a_variable_set_only_in_dotenv_is_kept(workdir, monkeypatch):
    (workdir / ".env").write_text(
        "netvalve_webhook_auth_values=from-the-dotenv-file-123\nLOG_LEVEL=\n", encoding="utf-8"
    )
    setup = DevSetup(user_variables())

    kept = setup.provide("NETVALVE_WEBHOOK_AUTH_VALUES", "generated-value-0000000")
    level = setup.provide("LOG_LEVEL", "INFO")  # empty counts as unset, as Settings reads it

    assert kept == "from-the-dotenv-file-123"
    # Not exported: the environment would win over the user's .env.
    assert "NETVALVE_WEBHOOK_AUTH_VALUES" not in os.environ
    assert setup.kept == ["NETVALVE_WEBHOOK_AUTH_VALUES"]
    assert level == "INFO"
    assert setup.generated == {"LOG_LEVEL": "INFO"}
    assert setup.origin("NETVALVE_WEBHOOK_AUTH_VALUES") == "yours"


def test_the_environment_wins_over_dotenv_and_is_kept(workdir, monkeypatch):
    (workdir / ".env").write_text("NETVALVE_CLIENT_ID=from-dotenv\n", encoding="utf-8")
    monkeypatch.setenv("NETVALVE_CLIENT_ID", "from-the-environment")
    setup = DevSetup(user_variables())

    assert setup.provide("NETVALVE_CLIENT_ID", "sandbox-generated") == "from-the-environment"
    assert os.environ["NETVALVE_CLIENT_ID"] == "from-the-environment"
    assert setup.origin("NETVALVE_CLIENT_ID") == "yours"
