"""What `make run` prints and what a newcomer can do with it (issue 12, sections 3 and 4): the
variables a user set are kept, what was generated is printed, the "try it" curls and the README's
sandbox curls work as written, and `make demo-cart` adds carts that can be paid."""

import json
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import PROJECT_ROOT
from tests.dev.test_make_run import read_banner, wait_until_serving
from tests.fixtures.environment import bare_env
from tests.fixtures.log_audit import audit_text
from tests.fixtures.ports import free_port

USER_WEBHOOK_VALUE = "users-own-webhook-value-2026"
BASH = shutil.which("bash") or "/bin/bash"
MAKE = shutil.which("make") or "/usr/bin/make"
README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")


@dataclass
class Stack:
    base: str
    banner: str
    workdir: Path
    env: dict[str, str]

    def bash(self, script: str) -> str:
        """Runs `script` as a newcomer would paste it, from the project's directory layout."""
        done = subprocess.run(
            [BASH, "-euo", "pipefail", "-c", script],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        audit_text("a try-it script", done.stdout + done.stderr)
        assert done.returncode == 0, done.stderr + done.stdout
        return done.stdout


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    """`make run` with nothing configured but the user's own webhook value."""
    workdir = tmp_path_factory.mktemp("make-run")
    port = free_port()
    env = bare_env(
        PORT=str(port),
        DEV_DATA_DIR=str(workdir / ".data"),
        PYTHONPATH=str(PROJECT_ROOT),
        NETVALVE_WEBHOOK_AUTH_VALUES=USER_WEBHOOK_VALUE,
    )
    launcher = subprocess.Popen(
        [sys.executable, "-m", "app.dev"],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_until_serving(base, launcher)
        except AssertionError:
            launcher.send_signal(signal.SIGINT)
            pytest.fail("make run did not start:\n" + launcher.communicate(timeout=60)[0])
        banner = read_banner(launcher)
        audit_text("make run (try it)", banner)
        yield Stack(base, banner, workdir, env)
    finally:
        if launcher.poll() is None:
            launcher.send_signal(signal.SIGINT)
            audit_text("make run (try it)", launcher.communicate(timeout=60)[0])


def try_it_script(printed: str, start: str) -> str:
    """The shell lines of a printed block, from the line after `start` to its last curl."""
    block = printed.split(start, 1)[1]
    lines = []
    for line in block.splitlines():
        command = line.removeprefix("  ")
        if command.startswith(("source ", "export ", "TOKEN=", "curl ")):
            lines.append(command)
    return "\n".join(lines)


def json_documents(output: str) -> list[dict[str, object]]:
    """The JSON bodies curl printed, one after another, with or without newlines between."""
    decoder = json.JSONDecoder()
    documents, position = [], 0
    while (position := output.find("{", position)) != -1:
        document, position = decoder.raw_decode(output, position)
        documents.append(document)
    return documents


def last_json(output: str) -> dict[str, object]:
    return json_documents(output)[-1]


def test_prints_the_generated_sandbox_url_credentials_and_webhook_value(stack):
    sandbox = re.search(r"in-process sandbox, (http://\S+)", stack.banner)
    client_id = re.search(r"client id +(\S+) \(generated\)", stack.banner)
    api_key = re.search(r"API key +(\S+) \(generated\)", stack.banner)
    assert sandbox, stack.banner
    assert client_id, stack.banner
    assert api_key, stack.banner
    session = httpx.get(
        f"{sandbox.group(1)}/hpf/initializeSession",
        headers={"netvalve-client-id": client_id.group(1), "netvalve-api-key": api_key.group(1)},
        timeout=10,
    )

    assert session.status_code == 200, session.text
    assert "X-Netvalve-Auth: (yours, from NETVALVE_WEBHOOK_AUTH_VALUES; not shown)" in stack.banner
    assert USER_WEBHOOK_VALUE not in stack.banner


def test_keeps_the_users_webhook_value_and_says_so(stack):
    url = f"{stack.base}/api/v1/netvalve/webhook"
    headers = {"Content-Type": "application/json"}
    theirs = httpx.post(
        url, content=b"{", headers=headers | {"X-Netvalve-Auth": USER_WEBHOOK_VALUE}, timeout=10
    )
    other = httpx.post(
        url, content=b"{", headers=headers | {"X-Netvalve-Auth": "x" * 24}, timeout=10
    )

    assert re.search(r"Kept yours .*NETVALVE_WEBHOOK_AUTH_VALUES", stack.banner), stack.banner
    assert theirs.status_code == 400, theirs.text  # past authentication: the body is bad
    assert other.status_code == 401


def test_the_try_it_block_pays_the_demo_cart(stack):
    assert "Swagger: " + stack.base + "/docs" in stack.banner
    assert "storefront sf_dev_" in stack.banner
    script = try_it_script(stack.banner, "Try it, in another shell:")
    assert script.count("curl ") == 4, script

    status = last_json(stack.bash(script))

    assert status["cart_id"] == "cart_01JDEMOCART00000000000000"
    assert status["status"] == "captured", status
    assert status["amount"] == "44.00"


def test_the_readmes_sandbox_curls_work_as_written(stack):
    block = re.search(r"```bash\n(source \.data/make-run\.env.*?)```", README, flags=re.S)
    assert block, "the README's sandbox example no longer starts with the make run env file"

    sale = last_json(stack.bash(block.group(1)))

    assert sale["responseCode"] == "GTW_1000", sale
    assert sale["transactionID"], sale


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [("1002.00", "EUR", "pending"), ("12.34", "usd", "captured"), ("2005.00", "EUR", "declined")],
)
def test_demo_cart_adds_a_cart_the_service_pays_with_that_amount(stack, amount, currency, expected):
    made = subprocess.run(
        [sys.executable, "-m", "app.dev", "demo-cart", "--amount", amount, "--currency", currency],
        cwd=stack.workdir,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    audit_text("make demo-cart", made.stdout + made.stderr)
    assert made.returncode == 0, made.stderr
    assert re.search(rf"Demo cart cart_\w+: {amount} {currency.upper()}", made.stdout)
    script = try_it_script(made.stdout, "Pay it,")
    script = f"source {stack.workdir / '.data' / 'make-run.env'}\n{script}"

    output = stack.bash(script)

    *_, payment, status = json_documents(output)
    assert status["amount"] == amount
    assert status["currency_code"] == currency.upper()
    if expected == "declined":
        assert payment["response_code"] == "BNK_2005", payment
        assert status["status"] != "captured"
    else:
        assert status["state"] == expected, status
    assert httpx.get(f"{stack.base}/health", timeout=5).status_code == 200  # server left running


def test_make_demo_cart_passes_amount_and_currency():
    dry_run = subprocess.run(
        [MAKE, "-n", "demo-cart", "amount=1002.00", "currency=EUR", "UV=uv"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )

    command = " ".join(dry_run.stdout.replace("\\\n", " ").split())
    assert "uv run python -m app.dev demo-cart --amount 1002.00 --currency EUR" in command
