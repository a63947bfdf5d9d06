"""The design floor: the least work a sale needs, as a raw ASGI app over asyncpg and httpx.

`POST /api/v1/netvalve/payment` as the service takes it (a storefront key, an Idempotency-Key,
`{payment_session_id, payment_token}`), against the same tables:

1. the API key, compared in constant time;
2. Medusa's payment session, then its cart (two queries, as app/db/medusa.py reads them);
3. one transaction: store the idempotency key, upsert and claim the payment, record the attempt;
4. the sale at NetValve over httpx with aiohttp's connection pool (`httpx_aiohttp`);
5. one transaction: the outcome on the payment and the attempt, the answer on the key;
6. a JSON answer.

No framework, no ORM, no logging, no metrics: what is left is what the design itself costs, so
the service's CPU per sale is measured against it. It answers the normal path in full (approved,
declined, pending or unknown); rarer refusals take the safe side (a completed cart is refused).
Served by the benchmark as `uvicorn bench.floor:app`, configured by the BENCH_FLOOR_* variables.
It imports nothing from `app`, so it stays the same reference while the service changes.
"""

import hashlib
import hmac
import json
import os
import time
import uuid
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

import asyncpg
import httpx
import httpx_aiohttp
from starlette.types import Receive, Scope, Send

PATH = "/api/v1/netvalve/payment"
PROVIDER_PREFIX = "pp_netvalve"
UNPAYABLE_SESSIONS = frozenset({"canceled", "error", "authorized", "captured"})
OPEN_COLLECTIONS = frozenset({"not_paid", "awaiting"})
PENDING_CODE = "GTW_1002"
CENTS = Decimal("0.01")

SESSION = """
SELECT ps.id, ps.payment_collection_id, ps.provider_id, ps.currency_code,
       COALESCE(ps.raw_amount->>'value', ps.amount::text) AS amount, ps.status,
       pc.status AS collection_status, pc.completed_at AS collection_completed_at, cpc.cart_id
FROM payment_session ps
JOIN payment_collection pc ON pc.id = ps.payment_collection_id AND pc.deleted_at IS NULL
LEFT JOIN cart_payment_collection cpc
       ON cpc.payment_collection_id = ps.payment_collection_id AND cpc.deleted_at IS NULL
WHERE ps.id = $1 AND ps.deleted_at IS NULL
ORDER BY cpc.created_at DESC NULLS LAST
LIMIT 1
"""

CART = """
SELECT c.email, c.completed_at, a.first_name, a.last_name, a.address_1, a.city, a.postal_code,
       a.country_code, a.phone
FROM cart c
LEFT JOIN cart_address a ON a.id = c.billing_address_id AND a.deleted_at IS NULL
WHERE c.id = $1 AND c.deleted_at IS NULL
"""

# New, expired, released (a 202 is not stored) or abandoned by a dead request: this request owns
# the key. Anything else is a replay, a request in flight or a reuse, told apart afterwards.
CLAIM_KEY = """
INSERT INTO idempotency_keys AS k (id, scope, key, fingerprint, locked_at, expires_at)
VALUES ($1, $2, $3, $4, now(), now() + interval '24 hours')
ON CONFLICT (scope, key) DO UPDATE
   SET fingerprint = EXCLUDED.fingerprint, locked_at = now(), expires_at = EXCLUDED.expires_at,
       response_status = NULL, response_body = NULL
   WHERE k.expires_at < now()
      OR (k.fingerprint = EXCLUDED.fingerprint AND k.response_status IS NULL
          AND (k.locked_at IS NULL
               OR k.locked_at < now() - interval '60 seconds'))
RETURNING id
"""

STORED_KEY = """
SELECT fingerprint, response_status, response_body::text AS body
FROM idempotency_keys WHERE scope = $1 AND key = $2
"""

# The upsert is the claim: a new payment starts in flight; an existing one is claimed only
# when nothing is in flight and nothing is charged (the conditional UPDATE lets one racer win).
CLAIM_PAYMENT = """
INSERT INTO payments AS p (id, payment_session_id, payment_collection_id, cart_id, currency,
                           amount_minor, medusa_amount, mode, in_flight, in_flight_attempt_id,
                           attempts_count)
VALUES ($1, $2, $3, $4, $5, $6, $7, 'sale', 'sale', $8, 1)
ON CONFLICT (payment_session_id) DO UPDATE
   SET in_flight = 'sale', in_flight_attempt_id = EXCLUDED.in_flight_attempt_id,
       attempts_count = p.attempts_count + 1, amount_minor = EXCLUDED.amount_minor,
       medusa_amount = EXCLUDED.medusa_amount, next_reconcile_at = NULL, reconcile_tries = 0,
       updated_at = now()
   WHERE p.in_flight IS NULL AND p.state = 'requires_payment'
RETURNING id, attempts_count
"""

RECORD_ATTEMPT = """
INSERT INTO payment_attempts (id, payment_id, operation, client_order_id, amount_minor,
                              request_key)
VALUES ($1, $2, 'sale', $3, $4, $5)
"""

# Guarded by the attempt: if the sweep or a webhook settled it meanwhile, theirs stands.
SETTLE_PAYMENT = """
UPDATE payments
   SET state = $3, transaction_id = $4, settled_transaction_id = $5, authorized_minor = $6,
       captured_minor = $6, card_number = COALESCE($7, card_number),
       card_type = COALESCE($8, card_type), response_code = $9, response_message = $10,
       decline_type = $11,
       in_flight = CASE WHEN $12 THEN NULL ELSE in_flight END,
       in_flight_attempt_id = CASE WHEN $12 THEN NULL ELSE in_flight_attempt_id END,
       next_reconcile_at = CASE WHEN $12 THEN NULL
                                ELSE now() + interval '30 seconds' END,
       updated_at = now()
 WHERE id = $1 AND in_flight_attempt_id = $2
RETURNING id, payment_session_id, payment_collection_id, cart_id, currency, amount_minor,
          medusa_amount::text AS medusa_amount, state, in_flight, transaction_id,
          authorized_minor, captured_minor, refunded_minor, card_number, card_type,
          response_code, response_message, created_at, updated_at
"""

SETTLE_ATTEMPT = """
UPDATE payment_attempts
   SET outcome = $2, http_status = $3, response_code = $4, response_message = $5,
       transaction_id = $6, elapsed_ms = $7, resolved_at = CASE WHEN $8 THEN now() END
 WHERE id = $1
"""

# A final answer is stored for replays; a 202 only unlocks the key, so a retry runs again.
ANSWER_KEY = """
UPDATE idempotency_keys SET response_status = $3, response_body = $4::jsonb, locked_at = NULL
 WHERE scope = $1 AND key = $2
"""


class Refused(Exception):
    """An answer other than the sale's own: (status, error name, detail)."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail

    def body(self) -> bytes:
        return json.dumps({"error": self.error, "detail": self.detail}).encode()


@dataclass(frozen=True, slots=True)
class Config:
    dsn: str
    pool_size: int
    api_key_digest: bytes
    gateway: str
    gateway_headers: dict[str, str]
    mid: int

    @classmethod
    def from_env(cls) -> "Config":
        env = os.environ
        return cls(
            dsn=env["BENCH_FLOOR_DSN"],
            pool_size=int(env.get("BENCH_FLOOR_POOL_SIZE", "30")),
            api_key_digest=hashlib.sha256(env["BENCH_FLOOR_API_KEY"].encode()).digest(),
            gateway=env["BENCH_FLOOR_GATEWAY_URL"].rstrip("/"),
            gateway_headers={
                "Accept": "application/json",
                "Content-Type": "application/json",
                "netvalve-client-id": env["BENCH_FLOOR_CLIENT_ID"],
                "netvalve-api-key": env["BENCH_FLOOR_GATEWAY_KEY"],
            },
            mid=int(env["BENCH_FLOOR_MID"]),
        )


class _State:
    """One pool and one gateway client per process, opened by the lifespan."""

    config: Config | None = None
    pool: "asyncpg.Pool[Any] | None" = None
    http: httpx.AsyncClient | None = None


@dataclass(frozen=True, slots=True)
class Sale:
    """A checked request, with what Medusa says about it."""

    scope: str
    key: str
    fingerprint: str
    token: str
    session: asyncpg.Record
    cart: asyncpg.Record | None
    amount_minor: int


@dataclass(frozen=True, slots=True)
class Outcome:
    """NetValve's answer, reduced to what the ledger records."""

    attempt: str  # payment_attempts.outcome
    state: str  # payments.state
    resolved: bool
    http_status: int | None
    body: dict[str, Any]

    @property
    def transaction_id(self) -> int | None:
        value = self.body.get("transactionID", self.body.get("transactionId"))
        return int(value) if isinstance(value, int | str) and str(value).isdigit() else None


@dataclass(frozen=True, slots=True)
class Claim:
    payment_id: uuid.UUID
    order: str  # the attempt's clientOrderId


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _authenticate(scope: Scope, config: Config) -> str:
    """The key's fingerprint (the idempotency scope), or 401."""
    scheme, _, token = (_header(scope, b"authorization") or "").partition(" ")
    presented = hashlib.sha256(token.encode()).digest()
    if scheme.lower() != "bearer" or not hmac.compare_digest(presented, config.api_key_digest):
        raise Refused(401, "NotAuthenticated", "A valid API key is required.")
    return presented.hex()[:16]


def _minor(amount_text: str) -> int:
    try:
        amount = Decimal(amount_text).quantize(CENTS, rounding=ROUND_HALF_UP)
    except InvalidOperation:
        raise Refused(
            422, "PaymentSessionAmountInvalid", "Medusa's amount is not a number."
        ) from None
    if not amount.is_finite() or amount <= 0:
        raise Refused(422, "InvalidAmount", "The payment session's amount is not positive.")
    return int(amount.scaleb(2))


def _check_session(session: asyncpg.Record | None) -> asyncpg.Record:
    if session is None or not str(session["provider_id"]).startswith(PROVIDER_PREFIX):
        raise Refused(404, "PaymentSessionNotFound", "No NetValve payment session has this id.")
    if session["status"] in UNPAYABLE_SESSIONS or session["collection_completed_at"] is not None:
        raise Refused(409, "PaymentSessionNotPayable", "The payment session cannot be paid.")
    if session["collection_status"] not in OPEN_COLLECTIONS:
        raise Refused(409, "PaymentSessionNotPayable", "The payment collection is closed.")
    if str(session["currency_code"]).upper() != "EUR":
        raise Refused(422, "UnsupportedCurrency", "Only EUR has a NetValve MID here.")
    return session


async def _read(scope: Scope, body: bytes, config: Config, pool: "asyncpg.Pool[Any]") -> Sale:
    key_scope = _authenticate(scope, config)
    key = _header(scope, b"idempotency-key")
    if not key or len(key) > 255:
        raise Refused(400, "IdempotencyKeyMissing", "An Idempotency-Key header is required.")
    try:
        request = json.loads(body)
        session_id, token = str(request["payment_session_id"]), str(request["payment_token"])
    except (ValueError, KeyError, TypeError):
        raise Refused(
            422, "RequestValidationError", "payment_session_id and payment_token."
        ) from None
    session = _check_session(await pool.fetchrow(SESSION, session_id))
    cart = await pool.fetchrow(CART, session["cart_id"]) if session["cart_id"] else None
    if session["cart_id"] and (cart is None or cart["completed_at"] is not None):
        raise Refused(409, "PaymentSessionNotPayable", "The cart is deleted or completed.")
    fingerprint = hashlib.sha256(b"POST " + PATH.encode() + b"\n" + body).hexdigest()
    return Sale(key_scope, key, fingerprint, token, session, cart, _minor(session["amount"]))


async def _replay(pool: "asyncpg.Pool[Any]", sale: Sale) -> tuple[int, bytes]:
    stored = await pool.fetchrow(STORED_KEY, sale.scope, sale.key)
    if stored is not None and stored["fingerprint"] != sale.fingerprint:
        raise Refused(422, "IdempotencyKeyReused", "This key was used for another request.")
    if stored is None or stored["response_status"] is None:
        raise Refused(409, "IdempotencyKeyInFlight", "A request with this key is in progress.")
    return int(stored["response_status"]), str(stored["body"]).encode()


async def _claim(pool: "asyncpg.Pool[Any]", sale: Sale, attempt_id: uuid.UUID) -> Claim | None:
    """Phase one, one transaction: the key, the payment, the attempt. None when this request
    does not own the key (a replay, a request in flight or a reused key)."""
    session = sale.session
    request_key = hashlib.sha256(f"{sale.scope}\n{sale.key}".encode()).hexdigest()
    async with pool.acquire() as connection, connection.transaction():
        owned = await connection.fetchval(
            CLAIM_KEY, uuid.uuid4(), sale.scope, sale.key, sale.fingerprint
        )
        if owned is None:
            return None
        payment = await connection.fetchrow(
            CLAIM_PAYMENT,
            uuid.uuid4(),
            session["id"],
            session["payment_collection_id"],
            session["cart_id"],
            "EUR",
            sale.amount_minor,
            Decimal(session["amount"]),
            attempt_id,
        )
        if payment is None:
            # Raised inside the transaction, so the key is not kept either.
            raise Refused(409, "PaymentInProgress", "The payment is in flight or already paid.")
        order = f"{payment['id'].hex}-{payment['attempts_count']}"
        await connection.execute(
            RECORD_ATTEMPT, attempt_id, payment["id"], order, sale.amount_minor, request_key
        )
    return Claim(payment["id"], order)


def _customer(cart: asyncpg.Record | None) -> dict[str, str]:
    if cart is None:
        return {}
    fields = {
        "customerEmail": cart["email"],
        "customerFirstName": cart["first_name"],
        "customerLastName": cart["last_name"],
        "customerAddress": cart["address_1"],
        "customerCity": cart["city"],
        "customerZipCode": cart["postal_code"],
        "customerCountryCode": (cart["country_code"] or "").upper(),
        "customerPhone": cart["phone"],
    }
    return {name: value for name, value in fields.items() if value}


def _classify(status: int, body: dict[str, Any]) -> Outcome:
    code = str(body.get("responseCode") or "")
    kind = str(body.get("responseCodeType") or "").upper()
    if status < 300 and (code == PENDING_CODE or kind == "PENDING"):
        return Outcome("pending", "pending", False, status, body)
    if status < 300 and (kind == "APPROVED" or (not kind and code.startswith("GTW_1"))):
        return Outcome("approved", "captured", True, status, body)
    if status < 300 and not code:
        return Outcome("unknown", "pending", False, status, {})
    return Outcome("declined", "requires_payment", True, status, body)


async def _sell(http: httpx.AsyncClient, config: Config, sale: Sale, order: str) -> Outcome:
    amount = f"{sale.amount_minor // 100}.{sale.amount_minor % 100:02d}"
    fields = {
        "currency": "EUR",
        "paymentType": "CARD",
        "paymentToken": sale.token,
        "clientOrderId": order,
        "midId": config.mid,
        **_customer(sale.cart),
    }
    # NetValve reads amounts as JSON numbers with two decimals, which json cannot write.
    content = b'{"amount":' + amount.encode() + b"," + json.dumps(fields).encode()[1:]
    try:
        response = await http.post(
            config.gateway + "/sale", content=content, headers=config.gateway_headers
        )
    except httpx.TransportError:
        return Outcome("unknown", "pending", False, None, {})
    if response.status_code >= 500 or response.status_code == 429:
        return Outcome("unknown", "pending", False, response.status_code, {})
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return Outcome("unknown", "pending", False, response.status_code, {})
    return _classify(response.status_code, body)


def _money(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


def _answer(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "payment_session_id": row["payment_session_id"],
        "payment_collection_id": row["payment_collection_id"],
        "cart_id": row["cart_id"],
        "currency_code": row["currency"],
        "amount": _money(row["amount_minor"]),
        "state": row["state"],
        "transaction_id": row["transaction_id"],
        "authorized_amount": _money(row["authorized_minor"]),
        "captured_amount": _money(row["captured_minor"]),
        "refunded_amount": _money(row["refunded_minor"]),
        "medusa_amount": row["medusa_amount"],
        "card_number": row["card_number"],
        "card_type": row["card_type"],
        "response_code": row["response_code"],
        "response_message": row["response_message"],
        "in_progress": row["in_flight"],
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }


def _settlement(claim: Claim, attempt_id: uuid.UUID, sale: Sale, outcome: Outcome) -> list[Any]:
    body, approved = outcome.body, outcome.attempt == "approved"
    declined = outcome.attempt == "declined"
    hard = "HARD" in str(body.get("responseCodeType") or "").upper()
    return [
        claim.payment_id,
        attempt_id,
        outcome.state,
        None if declined else outcome.transaction_id,
        outcome.transaction_id if approved else None,
        sale.amount_minor if approved else 0,
        body.get("cardNumber") or None,
        body.get("cardType") or None,
        body.get("responseCode"),
        body.get("responseMessage"),
        ("hard" if hard else "soft") if declined else None,
        outcome.resolved,
    ]


def _status(outcome: Outcome, payment: dict[str, Any]) -> tuple[int, bytes]:
    if not outcome.resolved:
        return 202, json.dumps(payment).encode()
    if outcome.attempt == "declined":
        message = outcome.body.get("responseMessage") or "NetValve declined the request."
        answer = {"error": "PaymentDeclined", "detail": message, "payment": payment}
        return 402, json.dumps(answer).encode()
    return 200, json.dumps(payment).encode()


async def _record(
    pool: "asyncpg.Pool[Any]",
    sale: Sale,
    claim: Claim,
    attempt_id: uuid.UUID,
    outcome: Outcome,
    elapsed_ms: float,
) -> tuple[int, bytes]:
    """Phase two, one transaction: the outcome on the payment and the attempt, the answer on
    the key. A crash before it commits leaves the attempt in flight, which the sweep settles."""
    async with pool.acquire() as connection, connection.transaction():
        row = await connection.fetchrow(
            SETTLE_PAYMENT, *_settlement(claim, attempt_id, sale, outcome)
        )
        if row is None:
            # Settled meanwhile by the sweep or a webhook: theirs stands; the key is released.
            await connection.execute(ANSWER_KEY, sale.scope, sale.key, None, None)
            raise Refused(409, "PaymentInProgress", "The payment was settled meanwhile.")
        await connection.execute(
            SETTLE_ATTEMPT,
            attempt_id,
            outcome.attempt,
            outcome.http_status,
            outcome.body.get("responseCode"),
            outcome.body.get("responseMessage"),
            outcome.transaction_id if outcome.attempt != "declined" else None,
            elapsed_ms,
            outcome.resolved,
        )
        status, answer = _status(outcome, _answer(row))
        final = outcome.resolved
        await connection.execute(
            ANSWER_KEY,
            sale.scope,
            sale.key,
            status if final else None,
            answer.decode() if final else None,
        )
    return status, answer


async def pay(scope: Scope, body: bytes) -> tuple[int, bytes]:
    config, pool, http = _State.config, _State.pool, _State.http
    if config is None or pool is None or http is None:
        raise RuntimeError("lifespan startup did not run")
    sale = await _read(scope, body, config, pool)
    attempt_id = uuid.uuid4()
    claim = await _claim(pool, sale, attempt_id)
    if claim is None:
        return await _replay(pool, sale)
    started = time.perf_counter()
    outcome = await _sell(http, config, sale, claim.order)
    elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
    return await _record(pool, sale, claim, attempt_id, outcome, elapsed_ms)


# --- ASGI ----------------------------------------------------------------------------------


async def _respond(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _startup() -> None:
    config = Config.from_env()
    _State.config = config
    _State.pool = await asyncpg.create_pool(config.dsn, min_size=1, max_size=config.pool_size)
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
    _State.http = httpx.AsyncClient(
        transport=httpx_aiohttp.AiohttpTransport(limits=limits),
        timeout=httpx.Timeout(30.0, connect=5.0),
    )


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await _startup()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if _State.http is not None:
                await _State.http.aclose()
            if _State.pool is not None:
                await _State.pool.close()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _body(receive: Receive) -> bytes:
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    if scope["method"] == "GET" and scope["path"] == "/health":
        await _respond(send, 200, b'{"status":"ok"}')
        return
    if scope["method"] != "POST" or scope["path"] != PATH:
        await _respond(send, 404, b'{"error":"NotFound"}')
        return
    body = await _body(receive)
    try:
        status, answer = await pay(scope, body)
    except Refused as refused:
        status, answer = refused.status, refused.body()
    await _respond(send, status, answer)
