"""`make sandbox`: the NetValve sandbox on 127.0.0.1:8090 (SANDBOX_HOST / SANDBOX_PORT).

It accepts the credentials in NETVALVE_CLIENT_ID and NETVALVE_API_KEY (defaults:
sandbox-client / sandbox-api-key), so the service and the sandbox share one configuration.
"""

import uvicorn
from pydantic import ValidationError

from app.core.config import configuration_error, secret_values
from app.core.logging import configure_logging
from app.core.startup import exit_on_startup_error
from app.sandbox.app import SandboxSettings, create_sandbox_app


def load_sandbox_settings() -> SandboxSettings:
    try:
        return SandboxSettings()
    except ValidationError as exc:
        raise configuration_error(exc) from None


def main() -> None:
    with exit_on_startup_error("netvalve-sandbox"):
        settings = load_sandbox_settings()
    configure_logging("INFO", secrets=secret_values(settings))
    base = f"http://{settings.sandbox_host}:{settings.sandbox_port}"
    print(  # noqa: T201
        f"\nNetValve sandbox on {base}\n"
        f"  client id   {settings.netvalve_client_id} (headers netvalve-client-id, "
        "netvalve-api-key)\n"
        f"  HPF demo    {base}/hpf/demo\n"
        f"  Controls    {base}/_sandbox/docs\n",
        flush=True,
    )
    uvicorn.run(
        create_sandbox_app(settings),
        host=settings.sandbox_host,
        port=settings.sandbox_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=1,
    )


if __name__ == "__main__":
    main()
