"""Schemathesis against the app's own OpenAPI, in-process over ASGI.

Every operation is fuzzed with valid keys (admin on all routes; storefront on its own routes),
from the schema's examples, its coverage cases (boundaries, missing and wrong-typed values, other
methods) and Hypothesis' generated data, positive and negative, with a fixed seed. Every response
must be documented (status, content type, schema: errors included), never a 5xx, and schema-valid
requests must be accepted while schema-invalid ones are refused.

The app runs for real: its lifespan (engine, Medusa pool, httpx client) starts on Schemathesis'
ASGI event-loop thread, where every request is then served, so asyncpg never crosses loops; our
tables and Medusa's live in the suite's PostgreSQL, and NetValve is the in-process sandbox. A
Medusa cart (the demo one the schema's examples name, and others), authorized and captured
payments and stored webhook events are seeded first, and positive cases draw their references
from them, so the fuzzer gets past 404s into the ledger.
"""

import base64
import itertools
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any, get_args

import asyncpg
import httpx
import pytest
import pytest_asyncio
import schemathesis
from fastapi import FastAPI
from hypothesis import strategies as st
from pydantic import SecretStr
from schemathesis import APIOperation, GenerationMode
from schemathesis.core.result import Ok
from schemathesis.python import asgi

from app.core.config import Settings
from app.dev.embedded_pg import asyncpg_dsn
from app.dev.medusa_demo import DEMO_CART_ID, DEMO_SESSION_ID, seed_demo_cart
from app.main import create_app
from app.schemas.webhook_event import WebhookEventName
from app.services.netvalve.webhooks import EVENTS
from tests.fixtures.api import ADMIN_KEY, LEDGER_TABLES, STOREFRONT_KEY
from tests.fixtures.gateway import APPROVE_CARD, UNUSED_DB, sandbox_headers
from tests.fixtures.log_audit import audit_database
from tests.fixtures.medusa import (
    MEDUSA_TABLE_NAMES,
    create_address,
    create_cart,
    create_payment_collection,
    create_payment_session,
)
from tests.fixtures.settings import make_settings
from tests.fixtures.webhooks import WEBHOOK_HEADER, WEBHOOK_SECRET

Case = schemathesis.Case[APIOperation[Any, Any, Any, Any]]
SEED = 20240611
PREFIX = "/api/v1/netvalve"
STOREFRONT_ROUTES = rf"^{PREFIX}/(hpf/session|payment|status)$"


def fuzz_config(key: str, max_examples: int) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            # A loaded 2-core CI box can make generation slow; that says nothing about the API.
            "suppress-health-check": ["too_slow"],
            "generation": {
                "max-examples": max_examples,
                "deterministic": True,
                "database": "none",
                "mode": "all",
            },
            "cache": {"enabled": False},
            # The schema's examples, the coverage cases (boundaries, missing and wrong-typed
            # values, other methods) and Hypothesis; stateful sequences are not run from pytest.
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": False},
            },
            # Every built-in check but one. `ignored_auth` also sends cases without the key (and
            # with a wrong one), which proves every route that documents Bearer auth demands it.
            # `positive_data_acceptance` expects no schema-valid request to get a 400 or 422,
            # but this API answers 422 to business refusals of well-formed requests (an amount
            # Medusa does not agree with, a refund above what was captured, a token NetValve
            # does not know); `passes_validation` below is that check, minus those refusals.
            "checks": {"enabled": True, "positive_data_acceptance": {"enabled": False}},
            # Through the security scheme, not a fixed header, so `ignored_auth` can leave it out.
            "auth": {"openapi": {"HTTPBearer": {"bearer": key}}},
            # NetValve's custom webhook header is not an OpenAPI security scheme: always sent.
            "headers": {WEBHOOK_HEADER: WEBHOOK_SECRET},
        }
    )


def fuzz_settings(database_url: str, sandbox_url: str) -> Settings:
    return make_settings(
        database_url,
        netvalve_base_url=sandbox_url,
        netvalve_hpp_url=sandbox_url,
        netvalve_hpf_url=sandbox_url,
        netvalve_backoffice_url=sandbox_url,
        netvalve_read_timeout=2.0,
        # Manual capture: payments stop at `authorized`, so capture and cancel have work to do.
        netvalve_capture_mode="manual",
        storefront_api_keys=[SecretStr(STOREFRONT_KEY)],
        admin_api_keys=[SecretStr(ADMIN_KEY)],
        netvalve_webhook_auth_header=WEBHOOK_HEADER,
        netvalve_webhook_auth_values=[SecretStr(WEBHOOK_SECRET)],
        # No background work: every ledger change comes from a request the fuzzer made.
        reconcile_enabled=False,
        webhook_worker_enabled=False,
        unknown_outcome_budget_seconds=0.3,
    )


class LiveApp:
    """The ASGI app Schemathesis calls: the module fixture plugs the started app in.

    The schema is loaded at import (pytest parametrizes from it), before the suite's database
    exists; the app that serves the requests is built by the fixture, against that database.
    (`schemathesis.pytest.from_fixture` would defer the loading instead, but 4.32 reaches for
    `request.node._nodeid`, which pytest 9 no longer has.)
    """

    app: FastAPI | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert self.app is not None, "the live_app fixture is not active"
        await self.app(scope, receive, send)


LIVE = LiveApp()
OPENAPI = create_app(fuzz_settings(UNUSED_DB, "http://127.0.0.1:1")).openapi()

admin_schema = schemathesis.openapi.from_dict(OPENAPI, config=fuzz_config(ADMIN_KEY, 30))
admin_schema.app = LIVE
storefront_schema = schemathesis.openapi.from_dict(
    OPENAPI, config=fuzz_config(STOREFRONT_KEY, 10)
).include(path_regex=STOREFRONT_ROUTES)
storefront_schema.app = LIVE


@dataclass
class Seeds:
    """Real references the positive cases draw from, by field name; `only` gives an operation
    references of its own, so one operation does not use up another's (a capture would leave
    cancel no authorization; a delete would leave replay no event)."""

    pools: dict[str, list[Any]] = field(default_factory=dict)
    only: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    cursor: str | None = None

    def for_operation(self, label: str) -> dict[str, list[Any]]:
        return {**self.pools, **self.only.get(label, {})}


SEEDS = Seeds()
QUERY_REFERENCES = {
    f"{PREFIX}/status": ("transaction_id", "payment_id", "payment_session_id", "cart_id"),
    f"{PREFIX}/hpf/session": ("payment_session_id", "cart_id"),
}


def is_positive(case: Case) -> bool:
    return case.meta is not None and case.meta.generation.mode == GenerationMode.POSITIVE


IDEMPOTENCY_KEYS = itertools.count()


def map_case(context: schemathesis.HookContext, case: Case) -> Case:
    """Positive cases obey the rules OpenAPI cannot state.

    - An Idempotency-Key is for one request: a key reused with another body is refused (422)
      by design, so each positive case gets a key of its own (the generated one, numbered).
    - /status and GET /hpf/session take exactly one reference (the models' validators say so;
      a query has no `oneOf`), so a positive case keeps only the first one it has.
    - `cursor` is opaque: only one this API handed out is valid, so it becomes a real one.
    """
    if not is_positive(case):
        return case
    if isinstance(case.headers, dict) and "Idempotency-Key" in case.headers:
        key = str(case.headers["Idempotency-Key"])[:240]
        case.headers["Idempotency-Key"] = f"{key}-{next(IDEMPOTENCY_KEYS):08d}"
    if not isinstance(case.query, dict):
        return case
    references = QUERY_REFERENCES.get(case.operation.path, ())
    given = [name for name in references if name in case.query]
    for name in given[1:]:
        del case.query[name]
    if "cursor" in case.query:
        if SEEDS.cursor is None:
            del case.query["cursor"]
        else:
            case.query["cursor"] = SEEDS.cursor
    return case


def filter_case(context: schemathesis.HookContext, case: Case) -> bool:
    """A positive query with none of its required references is not positive after all."""
    references = QUERY_REFERENCES.get(case.operation.path)
    if not references or not is_positive(case) or not isinstance(case.query, dict):
        return True
    return any(name in case.query for name in references)


def flatmap_case(context: schemathesis.HookContext, case: Case) -> st.SearchStrategy[Case]:
    """Each reference in a positive case is either kept or swapped for a seeded one (a null
    stays null: "exactly one of" depends on it)."""
    if not is_positive(case):
        return st.just(case)
    pools = SEEDS.for_operation(case.operation.label)
    slots = [
        (container, name)
        for container in (case.body, case.query, case.path_parameters)
        if isinstance(container, dict)
        for name, value in container.items()
        if value is not None and pools.get(name)
    ]
    if not slots:
        return st.just(case)

    def substitute(picks: tuple[Any, ...]) -> Case:
        for (container, name), pick in zip(slots, picks, strict=True):
            if pick is not None:
                container[name] = pick
        return case

    choices = [st.none() | st.sampled_from(pools[name]) for _, name in slots]
    return st.tuples(*choices).map(substitute)


for fuzzed in (admin_schema, storefront_schema):
    fuzzed.hook(filter_case)
    fuzzed.hook(map_case)
    fuzzed.hook(flatmap_case)


# Errors that say the request itself is invalid, as opposed to refusals of what it asks for.
REFUSED_AS_INVALID = {
    "RequestValidationError",
    "MalformedJSON",
    "IdempotencyKeyMissing",
    "IdempotencyKeyInvalid",
    "InvalidCursor",
    "BadRequest",
}


def passes_validation(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Case
) -> bool | None:
    """A request the schema calls valid is never refused as invalid: the app's validation and
    its OpenAPI agree. (Declines, conflicts and business 422s are answers, not refusals.)"""
    if not is_positive(case) or response.status_code not in (400, 422):
        return None
    body = response.json()
    error = body.get("error") if isinstance(body, dict) else None
    if error in REFUSED_AS_INVALID:
        raise AssertionError(
            f"A schema-valid request was refused as invalid: {response.status_code} {error}: "
            f"{body.get('detail')}"
        )
    return None


# --- the live app and its data ----------------------------------------------------------------


async def seed_medusa(database_url: str) -> dict[str, list[str]]:
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await seed_demo_cart(connection)
        sessions, carts = [DEMO_SESSION_ID], [DEMO_CART_ID]
        for amount in ("44.00", "98.9009", "10.00", "7.50", "12.34", "0.99", "250.00"):
            address = await create_address(connection)
            cart = await create_cart(connection, billing_address_id=address)
            collection = await create_payment_collection(connection, cart, amount=amount)
            sessions.append(await create_payment_session(connection, collection, amount=amount))
            carts.append(cart)
        return {"payment_session_id": sessions, "cart_id": carts}
    finally:
        await connection.close()


async def empty_tables(database_url: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        medusa = ", ".join(f'"{name}"' for name in MEDUSA_TABLE_NAMES)
        await audit_database(connection, "fuzz")
        await connection.execute(f"TRUNCATE {medusa}, {LEDGER_TABLES}, webhook_events")
    finally:
        await connection.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def medusa_rows(database_url: str) -> AsyncIterator[dict[str, list[str]]]:
    """Medusa's carts and sessions, committed (the app reads them over its own pool)."""
    rows = await seed_medusa(database_url)
    yield rows
    await empty_tables(database_url)


class Seeder:
    """Drives the started app through the ASGI client to create real ledger rows and events."""

    def __init__(self, client: asgi.ASGIClient, sandbox: httpx.Client) -> None:
        self.client = client
        self.sandbox = sandbox

    def call(self, method: str, path: str, key: str = ADMIN_KEY, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {key}", **kwargs.pop("headers", {})}
        if method == "POST" and path != "/webhook":
            headers["Idempotency-Key"] = f"fuzz-seed-{uuid.uuid4().hex}"
        response = self.client.request(method, PREFIX + path, headers=headers, **kwargs)
        assert response.status_code < 300, (path, response.status_code, response.text)
        return response.json()

    def token(self, session_id: str) -> str:
        """A payment token bound to the approving card, through the app's own HPF session."""
        hpf = self.call("POST", "/hpf/session", json={"payment_session_id": session_id})
        tokenized = self.sandbox.post(
            "/hpf/tokenize",
            json={
                "paymentToken": hpf["payment_token"],
                "cardNumber": APPROVE_CARD,
                "cardExpireMonth": "12",
                "cardExpireYear": "2030",
                "cardSecurityCode": "999",
                "cardHolderName": "Ada Lovelace",
            },
        )
        assert tokenized.status_code == 200, tokenized.text
        return str(hpf["payment_token"])

    def authorize(self, session_id: str) -> dict[str, Any]:
        body = {"payment_session_id": session_id, "payment_token": self.token(session_id)}
        payment: dict[str, Any] = self.call("POST", "/payment", json=body)
        assert payment["state"] == "authorized", payment
        return payment

    def webhook(self, name: str, transaction_id: int) -> str:
        event = {
            "eventName": name,
            "data": {"transactionId": transaction_id, "traceId": str(uuid.uuid4())},
        }
        receipt = self.call(
            "POST", "/webhook", json=event, headers={WEBHOOK_HEADER: WEBHOOK_SECRET}
        )
        return str(receipt["id"])


@pytest.fixture(scope="module")
def live_app(
    database_url: str, sandbox_url: str, medusa_rows: dict[str, list[str]]
) -> Iterator[FastAPI]:
    app = create_app(fuzz_settings(database_url, sandbox_url))
    LIVE.app = app
    try:
        # Entering the client starts the lifespan on Schemathesis' loop thread; it stays up
        # for every request of this module and is shut down below, on the same loop.
        with (
            asgi.get_client(LIVE) as client,
            httpx.Client(base_url=sandbox_url, headers=sandbox_headers(), timeout=5) as sandbox,
        ):
            seeder = Seeder(client, sandbox)
            sessions = medusa_rows["payment_session_id"]
            to_capture, to_cancel, to_refund = (seeder.authorize(s) for s in sessions[1:4])
            seeder.call("POST", "/capture", json={"payment_id": to_refund["id"]})
            payments = {"capture": to_capture, "cancel": to_cancel, "refund": to_refund}
            events = [
                seeder.webhook(name, payment["transaction_id"])
                for payment in payments.values()
                for name in ("AUTHORISED", "CAPTURED")
            ]
            page = seeder.call("GET", "/webhook-events", params={"limit": 1})
            SEEDS.cursor = page["next_cursor"]
            SEEDS.pools = {
                **medusa_rows,
                "payment_id": [payment["id"] for payment in payments.values()],
                "transaction_id": [payment["transaction_id"] for payment in payments.values()],
                "event_id": events[2:],
                "payment_token": [seeder.token(session) for session in sessions[4:]],
            }
            SEEDS.only = {
                f"POST {PREFIX}/{operation}": {
                    "payment_id": [payment["id"]],
                    "transaction_id": [payment["transaction_id"]],
                }
                for operation, payment in payments.items()
            }
            SEEDS.only[f"DELETE {PREFIX}/webhook-events/{{event_id}}"] = {"event_id": events[:2]}
            yield app
    finally:
        SEEDS.pools, SEEDS.only, SEEDS.cursor = {}, {}, None
        asgi.shutdown_lifespans()
        LIVE.app = None


# --- the fuzz tests ---------------------------------------------------------------------------


@admin_schema.parametrize()
def test_every_operation_with_the_admin_key(case: Case, live_app: FastAPI) -> None:
    case.call_and_validate(additional_checks=[passes_validation])


@storefront_schema.parametrize()
def test_storefront_operations_with_the_storefront_key(case: Case, live_app: FastAPI) -> None:
    case.call_and_validate(additional_checks=[passes_validation])


# --- what the fuzzer relies on ----------------------------------------------------------------


def test_the_fuzzed_schema_is_the_one_the_app_serves(live_app: FastAPI) -> None:
    with asgi.get_client(LIVE) as client:
        served = client.get("/openapi.json").json()

    assert served == OPENAPI
    operations = {
        (method.upper(), path) for path, item in OPENAPI["paths"].items() for method in item
    }
    fuzzed = set()
    for result in admin_schema.get_all_operations():
        assert isinstance(result, Ok), result
        fuzzed.add((result.ok().method.upper(), result.ok().path))
    assert fuzzed == operations
    assert len(operations) >= 14


# --- regressions: what the fuzzer found ---------------------------------------------------------


@pytest.fixture
def api(live_app: FastAPI) -> Iterator[asgi.ASGIClient]:
    with asgi.get_client(LIVE) as client:
        client.headers["Authorization"] = f"Bearer {ADMIN_KEY}"
        yield client


def error_of(response: Any) -> str:
    body = response.json()
    assert set(body) >= {"error", "detail", "request_id"}, body
    return str(body["error"])


def test_the_openapi_states_the_rules_the_app_enforces() -> None:
    """Found as "schema-valid request rejected": rules the app enforced and the schema hid."""
    paths = {path.removeprefix(PREFIX): item for path, item in OPENAPI["paths"].items()}
    schemas = OPENAPI["components"]["schemas"]
    for route in ("/payment", "/capture", "/refund", "/cancel"):
        operation = paths[route]["post"]
        [key] = [p for p in operation["parameters"] if p["name"] == "Idempotency-Key"]
        assert key["required"] is True
        assert key["schema"] == {
            "type": "string",
            "minLength": 8,
            "maxLength": 255,
            "pattern": "^[!-~]+$",
        }
        assert "400" in operation["responses"], route
        body = schemas[
            operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit(
                "/", 1
            )[-1]
        ]
        assert len(body["oneOf"]) == 2, route
    assert "400" in paths["/hpf/session"]["post"]["responses"]
    assert "400" in paths["/webhook-events/{event_id}"]["patch"]["responses"]
    webhook = paths["/webhook"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(webhook["properties"]["eventName"]["enum"]) == set(EVENTS)
    assert set(get_args(WebhookEventName)) == set(EVENTS)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("OPTIONS", "/hpf/session", "GET, POST"),
        ("PUT", f"/webhook-events/{uuid.UUID(int=1)}", "DELETE, GET, PATCH"),
        ("DELETE", "/status", "GET"),
    ],
)
def test_a_405_names_every_method_the_path_serves(
    api: asgi.ASGIClient, method: str, path: str, allow: str
) -> None:
    """Starlette named only the first matching route's methods: `Allow: POST` on /hpf/session."""
    response = api.request(method, PREFIX + path)

    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert error_of(response) == "MethodNotAllowed"


def test_a_body_that_is_not_utf8_is_malformed_json(api: asgi.ASGIClient) -> None:
    """Was 400 "BadRequest: There was an error parsing the body", undocumented on the route."""
    response = api.patch(
        f"{PREFIX}/webhook-events/{uuid.UUID(int=1)}",
        data=b"\xff\x18",
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert error_of(response) == "MalformedJSON"


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("GET", "/status", {"params": {"transaction_id": str(2**63)}}),
        ("GET", "/webhook-events", {"params": {"transaction_id": str(2**70)}}),
        ("POST", "/refund", {"json": {"transaction_id": 2**63}}),
        ("POST", "/capture", {"json": {"transaction_id": 28089131727054715307950080}}),
    ],
)
def test_a_transaction_id_beyond_bigint_is_a_422_not_a_500(
    api: asgi.ASGIClient, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    """Was 500: OverflowError binding the id to PostgreSQL's BIGINT."""
    headers = {"Idempotency-Key": f"fuzz-regression-{uuid.uuid4().hex}"}
    response = api.request(method, PREFIX + path, headers=headers, **kwargs)

    assert response.status_code == 422
    assert error_of(response) == "RequestValidationError"
    assert response.json()["detail"][0]["loc"][-1] == "transaction_id"


def test_the_largest_bigint_is_still_a_transaction_id(api: asgi.ASGIClient) -> None:
    response = api.get(f"{PREFIX}/status", params={"transaction_id": str(2**63 - 1)})

    assert response.status_code == 404
    assert error_of(response) == "PaymentNotFound"


@pytest.mark.parametrize(
    "value",
    [
        "0.5",  # was read as a Unix time: 200
        "2024-11-08T12:38:58",  # no offset: not RFC 3339
        "9999-12-31T23:59:59-23:59",  # was 500: beyond year 9999 in UTC
        "0001-01-01T00:00:00+23:59",  # was 500: before year 1 in UTC
    ],
)
def test_webhook_event_date_filters_take_rfc_3339_date_times_only(
    api: asgi.ASGIClient, value: str
) -> None:
    response = api.get(f"{PREFIX}/webhook-events", params={"received_to": value})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "received_to"]


def test_an_rfc_3339_date_time_filters_webhook_events(api: asgi.ASGIClient) -> None:
    before = api.get(f"{PREFIX}/webhook-events", params={"received_to": "2000-01-01T00:00:00Z"})
    since = api.get(
        f"{PREFIX}/webhook-events", params={"received_from": "2000-01-01T01:00:00.5+01:00"}
    )

    assert before.status_code == 200
    assert before.json()["items"] == []
    assert since.status_code == 200
    assert since.json()["items"]


def test_nul_characters_are_refused_before_they_reach_postgresql(api: asgi.ASGIClient) -> None:
    """Were 500s: PostgreSQL text cannot hold NUL (notes; the event_name filter)."""
    event: dict[str, Any] = {
        "eventName": "CAPTURED",
        "data": {"transactionId": 7, "traceId": str(uuid.uuid4())},
    }
    receipt = api.post(f"{PREFIX}/webhook", json=event, headers={WEBHOOK_HEADER: WEBHOOK_SECRET})
    event_id = receipt.json()["id"]
    before = api.get(f"{PREFIX}/webhook-events/{event_id}").json()

    notes = api.patch(f"{PREFIX}/webhook-events/{event_id}", json={"notes": "call back\x00"})
    listed = api.get(f"{PREFIX}/webhook-events", params={"event_name": "PURCHASED\x00"})

    assert notes.status_code == 422
    assert notes.json()["detail"][0]["loc"] == ["body", "notes"]
    assert listed.status_code == 422
    after = api.get(f"{PREFIX}/webhook-events/{event_id}").json()
    assert after["notes"] is None
    assert after["updated_at"] == before["updated_at"]


@pytest.mark.parametrize(
    ("data", "status", "stored"),
    [
        ({"transactionId": 7, "note": "a\x00b"}, 400, "rejected"),
        ({"transactionId": 7, "clientOrderId": "x\x00"}, 400, "rejected"),
        ({"transactionId": 2**70}, 200, "received"),
        ({"transactionId": "\u00b2"}, 200, "received"),  # "²".isdigit(), but int("²") fails
    ],
)
def test_a_webhook_postgresql_cannot_store_as_sent_is_still_answered(
    api: asgi.ASGIClient, data: dict[str, Any], status: int, stored: str
) -> None:
    """Were 500s (NetValve would redeliver them forever): a NUL in any string, a transaction id
    beyond BIGINT or one of non-ASCII digits. A NUL makes the event malformed (stored as
    rejected, 400); an id that cannot be NetValve's is stored without it."""
    event: dict[str, Any] = {
        "eventName": "PURCHASED",
        "data": {**data, "traceId": str(uuid.uuid4())},
    }
    response = api.post(f"{PREFIX}/webhook", json=event, headers={WEBHOOK_HEADER: WEBHOOK_SECRET})

    assert response.status_code == status, response.text
    listed = api.get(f"{PREFIX}/webhook-events", params={"status": stored, "limit": "1"})
    newest = listed.json()["items"][0]
    if status == 200:
        assert newest["id"] == response.json()["id"]
        assert newest["transaction_id"] is None
    else:
        assert error_of(response) == "WebhookMalformed"
        assert newest["payload"] is None


def test_a_forged_cursor_out_of_range_is_invalid_not_a_500(api: asgi.ASGIClient) -> None:
    """Was 500: a well-formed cursor whose time cannot be put in UTC."""
    forged = base64.urlsafe_b64encode(f"0001-01-01T00:00:00+23:59|{uuid.UUID(int=0)}".encode())

    response = api.get(f"{PREFIX}/webhook-events", params={"cursor": forged.decode()})

    assert response.status_code == 400
    assert error_of(response) == "InvalidCursor"
