"""The "try it" part of `make run`'s banner: one curl per step of the storefront flow.

The values live in a small shell file beside the embedded database (`.data/make-run.env`), so
the same lines work in another terminal and the README's sandbox examples run as written.
"""

import shlex
from dataclasses import dataclass
from pathlib import Path

ENV_FILE_NAME = "make-run.env"
JSON_FIELD = "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"{field}\"])'"
TEST_CARD = (
    '"cardNumber":"4012000098765439","cardExpireMonth":"12","cardExpireYear":"2030",'
    '"cardSecurityCode":"999","cardHolderName":"Ada"'
)
SANDBOX_TRIGGERS = "1002.00 pending, 2005.00 declined (app/sandbox/README.md lists them all)"


@dataclass(frozen=True)
class TryIt:
    gateway: str
    storefront_key: str
    admin_key: str
    sandbox: str
    client_id: str
    api_key: str
    cart_id: str

    def variables(self) -> dict[str, str]:
        return {
            "GATEWAY": self.gateway,
            "SF_KEY": self.storefront_key,
            "ADMIN_KEY": self.admin_key,
            "NETVALVE": self.sandbox,
            "H": f"-H netvalve-client-id:{self.client_id} -H netvalve-api-key:{self.api_key}",
            "CART": self.cart_id,
            # The sandbox's test card stays in the file, off the console and out of any log.
            "CARD": TEST_CARD,
        }

    def write(self, path: Path) -> None:
        """A file for `source`, mode 600: it holds the keys."""
        lines = [
            "# Written by `make run` at each start: `source` it to use the curls it prints.",
            *(f"export {name}={shlex.quote(value)}" for name, value in self.variables().items()),
        ]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def storefront_steps(cart_variable: str = "$CART") -> list[tuple[str, str]]:
    """(what, command) for each step; the commands use the variables of the env file."""
    auth = '-H "Authorization: Bearer $SF_KEY"'
    json_body = "-H 'Content-Type: application/json'"
    api = "$GATEWAY/api/v1/netvalve"
    cart = f'"cart_id":"\'{cart_variable}\'"'
    return [
        (
            "1. hosted-payment-fields session (its payment_token)",
            f"TOKEN=$(curl -s -X POST {api}/hpf/session {auth} {json_body} -d '{{{cart}}}' "
            f"| {JSON_FIELD.format(field='payment_token')})",
        ),
        (
            "2. the card the shopper types into the fields (the sandbox's tokenize)",
            f"curl -s -w '\\n' -X POST $NETVALVE/hpf/tokenize {json_body} "
            f"-d '{{\"paymentToken\":\"'$TOKEN'\",'\"$CARD\"'}}'",
        ),
        (
            "3. payment",
            f"curl -s -w '\\n' -X POST {api}/payment"
            f' {auth} -H "Idempotency-Key: pay-$TOKEN" '
            f"{json_body} -d '{{{cart},\"payment_token\":\"'$TOKEN'\"}}'",
        ),
        ("4. status", f"curl -s -w '\\n' \"{api}/status?cart_id={cart_variable}\" {auth}"),
    ]


def block(env_file: Path, swagger: str) -> str:
    lines = [
        "Try it, in another shell:",
        f"  source {shlex.quote(str(env_file))}",
    ]
    for what, command in storefront_steps():
        lines += [f"  # {what}", f"  {command}"]
    lines += [
        f"  Swagger: {swagger} (Authorize with $SF_KEY or $ADMIN_KEY)",
        "  Another cart: make demo-cart amount=1002.00 currency=EUR",
        f"  (sandbox amounts: {SANDBOX_TRIGGERS})",
    ]
    return "\n".join(lines)
