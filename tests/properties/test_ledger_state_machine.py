"""A Hypothesis state machine over the payment ledger, driven through the public HTTP API.

Two apps share one database: one sells (`NETVALVE_CAPTURE_MODE=sale`), one authorizes
(`manual`). Rules pay (approve and decline cards), pay again, capture, refund and cancel (all, in
part, exactly, or more than allowed; by payment id or by NetValve's transaction id), some with
the gateway's answer lost after NetValve processed the request. Captures, cancels and refunds
are also made at the sandbox itself, as an operator would in NetValve's portal: only webhooks
report those. The events the sandbox sent are delivered to the webhook route in a
Hypothesis-chosen order, with exact duplicates, redeliveries stamped anew and re-traced copies,
then the worker is drained. Replaying a stored answer with its Idempotency-Key moves no money.

After every step, for every payment, from GET /status and the sandbox's own records: the
amounts are ordered (refunded <= captured <= authorized <= amount); the state says what the
amounts say, never goes back and never leaves a terminal state; the ledger plus what only
undelivered webhooks could have told it equals what the sandbox did; and all of it equals a
model of what each answer and each delivered event should have done. A delivered event whose
prerequisite the ledger does not know yet (a refund of a capture whose own event is still on its
way) must be applied once the prerequisite is known: NetValve delivers in no particular order.

The machine is synchronous: the test runs it in a worker thread, and each step runs its
coroutines on the session event loop that owns the apps, the database pools and the clients.
LEDGER_MACHINE_EXAMPLES and LEDGER_MACHINE_STEPS make it search longer locally.
"""

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from pydantic import SecretStr

from app.api.deps import build_webhook_service
from app.clients.netvalve import Approved
from app.services.webhook_service import WebhookService
from tests.api.netvalve.conftest import ADMIN_KEY, STOREFRONT_KEY, Api, ApiFactory, MedusaSession
from tests.fixtures.gateway import APPROVE_CARD, DECLINE_CARD, SandboxBackend

pytestmark = pytest.mark.asyncio

T = TypeVar("T")

HEADER = "X-Netvalve-Auth"
SECRET = "whk_test_ledger_machine_000001"
APP_SETTINGS: dict[str, Any] = {
    "netvalve_webhook_auth_header": HEADER,
    "netvalve_webhook_auth_values": [SecretStr(SECRET)],
    "webhook_worker_enabled": False,  # the machine drains the inbox itself
    "webhook_retry_base_seconds": 0.05,
}
STEP_TIMEOUT = 60.0
MAX_PAYMENTS = 4  # per example: steps go to operating on payments more than to making them
DRAIN_ROUNDS = 6

REFUNDABLE = {"captured", "partially_refunded"}
SETTLED = {"captured", "partially_refunded", "refunded"}
# Where a state may be at the next observation (one step can apply several webhooks).
NEXT_STATES = {
    "requires_payment": {"requires_payment", "authorized", "captured"},
    "authorized": {"authorized", "captured", "partially_refunded", "refunded", "canceled"},
    "captured": {"captured", "partially_refunded", "refunded"},
    "partially_refunded": {"partially_refunded", "refunded"},
    "refunded": {"refunded"},  # terminal
    "canceled": {"canceled"},  # terminal
}
MEDUSA_STATUS = {
    "requires_payment": "error",  # every such payment here has had a declined attempt
    "authorized": "authorized",
    "captured": "captured",
    "partially_refunded": "captured",
    "refunded": "captured",
    "canceled": "canceled",
}
SANDBOX_SETTLED_STATUS = {
    "Settled": "captured",
    "Partially Refunded": "partially_refunded",
    "Refunded": "refunded",
}
# Faults after which the sandbox has processed the request but the service has no answer.
FAULTS: dict[str, dict[str, Any]] = {
    "reset": {"kind": "reset"},
    "http_error": {"kind": "http_error", "when": "after", "status": 502},
    "malformed": {"kind": "malformed"},
}

faults = st.sampled_from([None, *FAULTS])
modes = st.sampled_from(["sale", "manual"])
declines = st.sampled_from([False, False, True])
amounts = st.integers(100, 99_999)  # 1.00 to 999.99: below the sandbox's trigger amounts
hows = st.sampled_from(["all", "part", "exact", "over"])
percents = st.integers(1, 99)
references = st.sampled_from(["payment_id", "transaction_id"])


def cents(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


def minor_of(value: object) -> int:
    return int((Decimal(str(value)) * 100).to_integral_exact())


@dataclass
class OutsideOp:
    """An operation made at the sandbox directly, which the ledger learns of by webhook."""

    kind: str  # capture | cancel | refund
    transaction_id: int
    amount: int
    delivered: bool = False


@dataclass(eq=False)
class Tracked:
    """One Medusa payment session, and what the ledger should say about its payment."""

    label: str
    mode: str  # sale | manual: the app that owns it
    session: MedusaSession
    amount: int
    payment_id: str | None = None
    state: str = "requires_payment"
    transaction_id: int | None = None
    authorized: int = 0
    captured: int = 0
    refunded: int = 0
    outside: list[OutsideOp] = field(default_factory=list)
    """Done at the gateway, not (yet) in the ledger."""
    seen_states: list[str] = field(default_factory=list)
    seen_amounts: tuple[int, int, int] = (0, 0, 0)

    def __repr__(self) -> str:
        return self.label

    @property
    def hex(self) -> str:
        return uuid.UUID(self.payment_id).hex if self.payment_id else ""

    def pending(self, kind: str) -> list[OutsideOp]:
        return [op for op in self.outside if op.kind == kind]

    @property
    def gateway_captured(self) -> int:
        return self.captured + sum(op.amount for op in self.pending("capture"))

    @property
    def gateway_refunded(self) -> int:
        return self.refunded + sum(op.amount for op in self.pending("refund"))

    @property
    def gateway_authorization_open(self) -> bool:
        """An authorization NetValve would still capture or cancel."""
        return self.state == "authorized" and not self.pending("capture") + self.pending("cancel")

    def settle_refunds(self) -> None:
        self.state = "refunded" if self.refunded == self.captured else "partially_refunded"

    def apply_delivered(self) -> None:
        """What the ledger must hold once every delivered event has been processed: each
        operation in it, as soon as the ledger knows what it depends on."""
        progress = True
        while progress:
            progress = False
            for op in [op for op in self.outside if op.delivered]:
                if op.kind == "capture" and self.state == "authorized":
                    self.captured, self.state = op.amount, "captured"
                elif op.kind == "cancel" and self.state == "authorized":
                    self.state = "canceled"
                elif op.kind == "refund" and self.state in REFUNDABLE:
                    self.refunded += op.amount
                    self.settle_refunds()
                else:
                    continue
                self.outside.remove(op)
                progress = True


@dataclass
class Replay:
    api: Api
    path: str
    body: dict[str, Any]
    key: str
    idempotency_key: str
    status: int
    answer: Any


@dataclass
class World:
    loop: asyncio.AbstractEventLoop
    apis: dict[str, Api]
    services: dict[str, WebhookService]
    gateway: SandboxBackend

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the session loop (the machine runs in another thread)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(STEP_TIMEOUT)


def expect(response: httpx.Response, status: int, error: str | None = None) -> Any:
    assert response.status_code == status, (
        f"expected {status} {error or ''}, got {response.status_code}: {response.text}"
    )
    body = response.json()
    if error is not None:
        assert body["error"] == error, body
    return body


def pick(how: str, percent: int, base: int) -> int | None:
    """An amount to request: None (all), part of `base`, exactly `base`, or more than it."""
    if how == "all":
        return None
    if how == "part":
        return max(1, base * percent // 100)
    if how == "exact":
        return base
    return base + percent


def identity(event: dict[str, Any]) -> str:
    """What the inbox deduplicates on (timestamps are left out on purpose)."""
    data = event["data"]
    parts = [
        event["eventName"],
        data.get("transactionId"),
        data.get("traceId"),
        data.get("responseCode"),
        str(Decimal(str(data.get("amount")))),
    ]
    return json.dumps(parts, default=str)


async def sent_events(world: World) -> list[dict[str, Any]]:
    """The event the sandbox sent for each of its transactions since its last reset."""
    admin = world.gateway.admin
    events: list[dict[str, Any]] = []
    for _ in range(250):
        transactions = (await admin.get("/_sandbox/transactions")).json()["transactions"]
        ids = {transaction["transactionId"] for transaction in transactions}
        delivered = (await admin.get("/_sandbox/webhooks")).json()["delivered"]
        # A delivery still under way at the reset may land after it: not this example's.
        events = [event for event in delivered if event["data"]["transactionId"] in ids]
        if len(events) >= len(ids):
            break
        await asyncio.sleep(0.02)
    assert sorted(event["data"]["transactionId"] for event in events) == sorted(ids), (
        "the sandbox did not send one event per transaction"
    )
    return events


async def deliver(api: Api, event: dict[str, Any]) -> httpx.Response:
    return await api.http.post(
        "/api/v1/netvalve/webhook",
        content=json.dumps(event).encode(),
        headers={"Content-Type": "application/json", HEADER: SECRET},
    )


async def drain(world: World, workers: int = 1) -> list[dict[str, Any]]:
    """Run the webhook workers until nothing is left to do; returns the events still waiting.
    Retries are made due at once, as if their back-off had passed."""
    services = [world.services["sale"], world.services["manual"]]
    medusa = world.apis["sale"].medusa
    waiting: list[dict[str, Any]] = []
    for _ in range(DRAIN_ROUNDS):
        await medusa.execute(
            "UPDATE webhook_events SET next_attempt_at = now() "
            "WHERE status IN ('failed', 'pending_match')"
        )
        while sum(await asyncio.gather(*(services[i].process_due(100) for i in range(workers)))):
            pass
        rows = await medusa.fetch(
            "SELECT event_name, transaction_id, status, last_error FROM webhook_events "
            "WHERE status NOT IN ('processed', 'ignored') AND deleted_at IS NULL"
        )
        if [dict(row) for row in rows] == waiting:
            break
        waiting = [dict(row) for row in rows]
    return waiting


class LedgerMachine(RuleBasedStateMachine):
    world: World  # bound by the test, on a subclass
    payments = Bundle("payments")

    def __init__(self) -> None:
        super().__init__()
        self.tracked: list[Tracked] = []
        self.stored_events: set[str] = set()
        self.last_final: Replay | None = None
        self.retraces = 0
        # Each example starts from an empty gateway: its transactions are all this example's.
        reset = self.world.run(self.world.gateway.admin.post("/_sandbox/reset"))
        assert reset.status_code == 204, reset.text

    def teardown(self) -> None:
        self.world.run(self.world.gateway.admin.delete("/_sandbox/faults"))

    # --- helpers -----------------------------------------------------------------------------

    def api(self, tracked: Tracked) -> Api:
        return self.world.apis[tracked.mode]

    def reference(self, tracked: Tracked, by: str) -> dict[str, Any]:
        if by == "transaction_id" and tracked.transaction_id is not None:
            return {"transaction_id": tracked.transaction_id}
        return {"payment_id": tracked.payment_id}

    def send(
        self,
        tracked: Tracked,
        path: str,
        body: dict[str, Any],
        *,
        key: str = ADMIN_KEY,
        fault: str | None = None,
        gateway_path: str | None = None,
    ) -> httpx.Response:
        """POST to the service; with `fault`, the gateway's answer to `gateway_path` is lost."""
        api = self.api(tracked)
        admin = self.world.gateway.admin
        if fault is not None:
            rule_body = {"path": gateway_path or path, "times": 1, **FAULTS[fault]}
            armed = self.world.run(admin.post("/_sandbox/faults", json=rule_body))
            assert armed.status_code == 201, armed.text
        idempotency_key = f"ledger-machine-{uuid.uuid4().hex}"
        response = self.world.run(api.post(path, body, key=key, idempotency_key=idempotency_key))
        if fault is not None:
            left = self.world.run(admin.get("/_sandbox/faults")).json()
            if left:
                self.world.run(admin.delete("/_sandbox/faults"))
            assert not left, f"the service never called {gateway_path or path}"
        if response.status_code not in (202, 409) and response.status_code < 500:
            self.last_final = Replay(
                api, path, body, key, idempotency_key, response.status_code, response.json()
            )
        return response

    def gateway_transactions(self) -> list[dict[str, Any]]:
        response = self.world.run(self.world.gateway.admin.get("/_sandbox/transactions"))
        return list(response.json()["transactions"])

    # --- rules: payments ---------------------------------------------------------------------

    @initialize(target=payments, amount=amounts)
    def start_with_a_sale(self, amount: int) -> Tracked:
        return self._new_payment("sale", False, amount, None)

    @initialize(target=payments, amount=amounts)
    def start_with_an_authorization(self, amount: int) -> Tracked:
        return self._new_payment("manual", False, amount, None)

    @precondition(lambda self: len(self.tracked) < MAX_PAYMENTS)
    @rule(target=payments, mode=modes, decline=declines, amount=amounts, fault=faults)
    def pay(self, mode: str, decline: bool, amount: int, fault: str | None) -> Tracked:
        return self._new_payment(mode, decline, amount, fault)

    def _new_payment(self, mode: str, decline: bool, amount: int, fault: str | None) -> Tracked:
        api = self.world.apis[mode]
        session = self.world.run(api.medusa_session(amount=cents(amount)))
        tracked = Tracked(f"p{len(self.tracked)}", mode, session, amount)
        self.tracked.append(tracked)
        self._pay(tracked, decline, fault)
        return tracked

    @precondition(lambda self: any(t.state == "requires_payment" for t in self.tracked))
    @rule(tracked=payments, decline=declines, fault=faults)
    def pay_again(self, tracked: Tracked, decline: bool, fault: str | None) -> None:
        """A declined payment may be retried with a new token; a paid one is not charged twice.
        (Only while some payment is declined: this rule would otherwise crowd out the rest.)"""
        self._pay(tracked, decline, fault)

    def _pay(self, tracked: Tracked, decline: bool, fault: str | None) -> None:
        api = self.api(tracked)
        token = self.world.run(api.token(DECLINE_CARD if decline else APPROVE_CARD))
        body = {"payment_session_id": tracked.session.session_id, "payment_token": token}
        charges = tracked.state == "requires_payment"
        before = 0 if charges else len(self.gateway_transactions())
        response = self.send(
            tracked,
            "/payment",
            body,
            key=STOREFRONT_KEY,
            fault=fault if charges else None,
            gateway_path="/sale" if tracked.mode == "sale" else "/authorize",
        )
        if not charges:
            if tracked.state == "canceled":
                expect(response, 409, "PaymentStateConflict")
            else:
                answer = expect(response, 200)
                assert (answer["id"], answer["state"]) == (tracked.payment_id, tracked.state)
            assert len(self.gateway_transactions()) == before, "a paid session was charged again"
            return
        if decline:
            payment = expect(response, 402, "PaymentDeclined")["payment"]
            assert (payment["state"], payment["status"]) == ("requires_payment", "error")
        else:
            payment = expect(response, 200)
            tracked.state = "captured" if tracked.mode == "sale" else "authorized"
            tracked.transaction_id = payment["transaction_id"]
            tracked.authorized = tracked.amount
            tracked.captured = tracked.amount if tracked.mode == "sale" else 0
            assert payment["state"] == tracked.state
        tracked.payment_id = tracked.payment_id or payment["id"]
        assert payment["id"] == tracked.payment_id

    # --- rules: capture, refund, cancel ------------------------------------------------------

    @rule(tracked=payments, how=hows, percent=percents, by=references, fault=faults)
    def capture(self, tracked: Tracked, how: str, percent: int, by: str, fault: str | None) -> None:
        remaining = tracked.authorized - tracked.captured
        amount = pick(how, percent, remaining or tracked.amount)
        requested = remaining if amount is None else amount
        status, error, moves = 200, None, False
        outside = tracked.pending("capture")
        if requested <= 0:
            status, error = 422, "InvalidAmount"
        elif tracked.state == "authorized":
            if requested > remaining:
                status, error = 422, "CaptureExceedsAuthorized"
            elif tracked.pending("cancel"):
                status, error = 409, "PaymentStateConflict"  # GTW_2047: cancelled at NetValve
            else:
                moves = not outside  # else GTW_2046: NetValve's record of the capture decides
        elif not (tracked.state in SETTLED and tracked.captured == requested):
            status, error = 409, "PaymentStateConflict"
        body = self.reference(tracked, by)
        if amount is not None:
            body["amount"] = cents(amount)
        response = self.send(tracked, "/capture", body, fault=fault if moves else None)
        answer = expect(response, status, error)
        if moves:
            tracked.captured, tracked.state = requested, "captured"
        elif status == 200 and outside:
            tracked.captured, tracked.state = outside[0].amount, "captured"
            tracked.outside.remove(outside[0])
        if status == 200:
            assert (answer["state"], minor_of(answer["captured_amount"])) == (
                tracked.state,
                tracked.captured,
            )

    @rule(tracked=payments, how=hows, percent=percents, by=references, fault=faults)
    def refund(self, tracked: Tracked, how: str, percent: int, by: str, fault: str | None) -> None:
        refundable = tracked.captured - tracked.refunded  # as the ledger knows it
        at_gateway = tracked.gateway_captured - tracked.gateway_refunded
        amount = pick(how, percent, refundable or tracked.captured or tracked.amount)
        requested = refundable if amount is None else amount
        status, error, moves = 200, None, False
        if requested <= 0:
            status, error = 422, "InvalidAmount"
        elif tracked.state not in REFUNDABLE:
            status, error = 409, "PaymentStateConflict"
        elif requested > refundable:
            status, error = 422, "RefundExceedsCaptured"
        elif requested <= at_gateway:
            moves = True
        elif at_gateway > 0:
            status, error = 402, "PaymentDeclined"  # GTW_2108: more than NetValve has left
        # else GTW_2045, nothing left at NetValve: its record of the refunds decides.
        body = self.reference(tracked, by)
        if amount is not None:
            body["amount"] = cents(amount)
        response = self.send(tracked, "/refund", body, fault=fault if moves else None)
        answer = expect(response, status, error)
        if status != 200:
            return
        if moves and fault is None:
            tracked.refunded += requested
        else:
            # Settled from NetValve's record, which also holds the refunds made at the gateway:
            # the ledger has them all now, and their webhooks must change nothing.
            tracked.refunded = tracked.gateway_refunded + (requested if moves else 0)
            for op in tracked.pending("refund"):
                tracked.outside.remove(op)
        tracked.settle_refunds()
        assert (answer["state"], minor_of(answer["refunded_amount"])) == (
            tracked.state,
            tracked.refunded,
        )

    @rule(tracked=payments, by=references, fault=faults)
    def cancel(self, tracked: Tracked, by: str, fault: str | None) -> None:
        outside = tracked.pending("cancel")
        moves = tracked.gateway_authorization_open
        response = self.send(
            tracked, "/cancel", self.reference(tracked, by), fault=fault if moves else None
        )
        if tracked.state == "authorized" and tracked.pending("capture"):
            expect(response, 409, "PaymentStateConflict")  # GTW_2046: captured at NetValve
        elif tracked.state in ("authorized", "canceled"):
            tracked.state = "canceled"
            for op in outside:
                tracked.outside.remove(op)
            assert expect(response, 200)["state"] == "canceled"
        else:
            expect(response, 409, "PaymentStateConflict")

    @precondition(lambda self: self.last_final is not None)
    @rule()
    def replay_last_request(self) -> None:
        """The same Idempotency-Key and body: the stored answer, and no money moves."""
        last, self.last_final = self.last_final, None  # once each: a replay is a replay
        assert last is not None
        before = len(self.gateway_transactions())
        response = self.world.run(
            last.api.post(last.path, last.body, key=last.key, idempotency_key=last.idempotency_key)
        )
        assert response.status_code == last.status, response.text
        assert response.json() == last.answer
        assert response.headers.get("idempotent-replayed") == "true"
        assert len(self.gateway_transactions()) == before

    # --- rules: operations made at the gateway directly --------------------------------------

    @rule(
        tracked=payments,
        kind=st.sampled_from(["refund", "capture", "capture and refund", "cancel"]),
        everything=st.booleans(),
        percent=percents,
    )
    def operate_at_the_gateway(
        self, tracked: Tracked, kind: str, everything: bool, percent: int
    ) -> None:
        """What an operator does in NetValve's portal: only webhooks tell the service. On
        `tracked` if NetValve allows `kind` on it now, else on the next payment that allows it."""

        def allows(candidate: Tracked) -> bool:
            if kind == "refund":
                return candidate.gateway_captured > candidate.gateway_refunded
            return candidate.gateway_authorization_open

        others = [candidate for candidate in self.tracked if candidate is not tracked]
        chosen = next((candidate for candidate in [tracked, *others] if allows(candidate)), None)
        if chosen is None:
            return
        tracked, client, parent = chosen, self.world.gateway.client, chosen.transaction_id
        assert parent is not None
        if kind == "cancel":
            result = self.world.run(client.cancel(parent))
            self._done_outside(tracked, "cancel", tracked.authorized, result)
            return
        if kind.startswith("capture"):
            whole = tracked.authorized
            amount = whole if everything else max(1, whole * percent // 100)
            result = self.world.run(
                client.capture(parent, Decimal(cents(amount)), final_capture=amount < whole)
            )
            self._done_outside(tracked, "capture", amount, result)
        if kind.endswith("refund"):
            left = tracked.gateway_captured - tracked.gateway_refunded
            amount = left if everything else max(1, left * percent // 100)
            result = self.world.run(client.refund(parent, Decimal(cents(amount))))
            self._done_outside(tracked, "refund", amount, result)

    def _done_outside(self, tracked: Tracked, kind: str, amount: int, result: object) -> None:
        assert isinstance(result, Approved), result
        assert result.transaction_id is not None
        tracked.outside.append(OutsideOp(kind, result.transaction_id, amount))

    # --- rules: webhooks ---------------------------------------------------------------------

    @rule(data=st.data())
    def deliver_some_webhooks(self, data: st.DataObject) -> None:
        """Some of the events not delivered yet, and copies of any, in any order."""
        events = self.world.run(sent_events(self.world))
        fresh = [event for event in events if identity(event) not in self.stored_events]
        keep = data.draw(
            st.lists(st.booleans(), min_size=len(fresh), max_size=len(fresh)), label="deliver"
        )
        batch = [event for event, chosen in zip(fresh, keep, strict=True) if chosen]
        self._deliver(batch, events, data)

    @rule(data=st.data())
    def deliver_every_webhook(self, data: st.DataObject) -> None:
        """Every event sent so far, and copies of any, in any order: the ledger must then hold
        everything NetValve did."""
        events = self.world.run(sent_events(self.world))
        self._deliver(list(events), events, data)
        for tracked in self.tracked:
            assert tracked.outside == [], f"{tracked}: the model left {tracked.outside}"

    def _deliver(
        self, batch: list[dict[str, Any]], events: list[dict[str, Any]], data: st.DataObject
    ) -> None:
        if events:
            copies = data.draw(
                st.lists(
                    st.tuples(
                        st.integers(0, len(events) - 1),
                        st.sampled_from(["exact", "restamped", "retraced"]),
                    ),
                    max_size=3,
                ),
                label="copies",
            )
            batch = batch + [self._copy(events[index], how) for index, how in copies]
        if not batch:
            return
        order = data.draw(st.permutations(range(len(batch))), label="order")
        workers = data.draw(st.integers(1, 2), label="workers")

        owners = {tracked.hex: tracked for tracked in self.tracked if tracked.payment_id}
        for event in (batch[index] for index in order):
            owner = owners[str(event["data"]["clientOrderId"]).split("-", 1)[0]]
            receipt = self.world.run(deliver(self.api(owner), event))
            expected = "duplicate" if identity(event) in self.stored_events else "stored"
            assert receipt.status_code == 200, receipt.text
            assert receipt.json()["status"] == expected, (event, receipt.json())
            self.stored_events.add(identity(event))
            delivered = int(event["data"]["transactionId"])
            for op in owner.outside:
                op.delivered = op.delivered or op.transaction_id == delivered
        for tracked in self.tracked:
            tracked.apply_delivered()

        waiting = self.world.run(drain(self.world, workers))
        blocked = {op.transaction_id for t in self.tracked for op in t.outside if op.delivered}
        unsettled = [row for row in waiting if row["transaction_id"] not in blocked]
        assert unsettled == [], f"webhook events left unsettled: {unsettled}"

    def _copy(self, event: dict[str, Any], how: str) -> dict[str, Any]:
        """A redelivery: as sent, stamped anew, or re-traced (a new event to the inbox)."""
        again: dict[str, Any] = json.loads(json.dumps(event))
        if how == "restamped":
            again["data"]["responseTimestamp"] = "2030-01-01T00:00:00.000000000"
        elif how == "retraced":
            self.retraces += 1
            again["data"]["traceId"] = str(uuid.UUID(int=self.retraces))
        return again

    # --- invariants --------------------------------------------------------------------------

    @invariant()
    def ledger_agrees_with_gateway_and_model(self) -> None:
        known = [tracked for tracked in self.tracked if tracked.payment_id]
        if not known:
            return
        statuses = self.world.run(self._statuses(known))
        transactions = self.gateway_transactions()
        for tracked, response in zip(known, statuses, strict=True):
            assert response.status_code == 200, response.text
            self._check(tracked, response.json(), transactions)

    async def _statuses(self, known: list[Tracked]) -> list[httpx.Response]:
        return [
            await self.api(tracked).get("/status", {"payment_id": tracked.payment_id})
            for tracked in known
        ]

    def _check(
        self, tracked: Tracked, ledger: dict[str, Any], transactions: list[dict[str, Any]]
    ) -> None:
        name = tracked.label
        state = ledger["state"]
        authorized, captured, refunded = (
            minor_of(ledger[f"{kind}_amount"]) for kind in ("authorized", "captured", "refunded")
        )
        assert ledger["in_progress"] is None, f"{name}: an operation was left in flight"

        # The money invariants, and a state that says what the amounts say.
        assert 0 <= refunded <= captured <= authorized <= tracked.amount, (name, ledger)
        assert minor_of(ledger["amount"]) == tracked.amount, name
        shape = {
            "requires_payment": authorized == 0,
            "authorized": authorized > 0 and captured == 0,
            "captured": captured > 0 and refunded == 0,
            "partially_refunded": 0 < refunded < captured,
            "refunded": 0 < refunded == captured,
            "canceled": authorized > 0 and captured == 0,
        }
        assert shape[state], f"{name}: state {state} with amounts {ledger}"
        assert ledger["status"] == MEDUSA_STATUS[state], (name, ledger["status"], state)

        # Terminal states are absorbing, no state goes back, no amount shrinks.
        if tracked.seen_states:
            previous = tracked.seen_states[-1]
            assert state in NEXT_STATES[previous], f"{name}: {previous} -> {state}"
        tracked.seen_states.append(state)
        amounts = (authorized, captured, refunded)
        assert all(map(int.__ge__, amounts, tracked.seen_amounts)), (
            f"{name}: amounts went down: {tracked.seen_amounts} -> {amounts}"
        )
        tracked.seen_amounts = amounts

        # The sandbox's own record: what the ledger holds, plus what only undelivered (or not
        # yet applicable) webhooks could have told it.
        mine = [t for t in transactions if str(t["clientOrderId"]).startswith(tracked.hex)]
        roots = [t for t in mine if t["transactionType"] in ("SALE", "AUTHORIZATION")]
        approved = [t for t in roots if t["responseCode"] == "GTW_1000"]
        assert len(approved) <= 1, f"{name}: charged more than once: {approved}"
        root = approved[0] if approved else None
        captures = [t for t in mine if t["transactionType"] == "CAPTURE"]
        assert len(captures) <= 1, f"{name}: captured more than once"
        settled = root if root and root["transactionType"] == "SALE" else next(iter(captures), None)
        canceled = any(t["transactionType"] == "CANCEL" for t in mine)
        gateway = (
            minor_of(root["amount"]) if root else 0,
            minor_of(settled["amount"]) if settled else 0,
            sum(minor_of(t["amount"]) for t in mine if t["transactionType"] == "REFUND"),
        )
        unreported = (
            sum(op.amount for op in tracked.pending("capture")),
            sum(op.amount for op in tracked.pending("refund")),
        )
        assert (authorized, captured + unreported[0], refunded + unreported[1]) == gateway, (
            f"{name}: ledger {amounts}, not yet reported {unreported}, gateway {gateway}"
        )
        assert ledger["transaction_id"] == (root["transactionId"] if root else None), name
        assert canceled == (state == "canceled" or bool(tracked.pending("cancel"))), name
        if canceled:
            gateway_state = "canceled"
        elif settled is not None:
            gateway_state = SANDBOX_SETTLED_STATUS[settled["status"]]
        elif root is not None:
            assert root["status"] == "Authorised", (name, root)
            gateway_state = "authorized"
        else:
            gateway_state = "requires_payment"
        if not tracked.outside:
            assert state == gateway_state, f"{name}: ledger {state}, gateway {gateway_state}"

        # The model: what each answer and each delivered event should have done.
        assert (state, *amounts) == (
            tracked.state,
            tracked.authorized,
            tracked.captured,
            tracked.refunded,
        ), f"{name}: ledger {(state, *amounts)}, model {tracked.__dict__}"
        assert ledger["transaction_id"] == tracked.transaction_id, name


MACHINE_SETTINGS = settings(
    max_examples=int(os.environ.get("LEDGER_MACHINE_EXAMPLES", "20")),
    stateful_step_count=int(os.environ.get("LEDGER_MACHINE_STEPS", "20")),
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=False,
    # No explain phase: it replays the failure many times over for little here.
    phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink),
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)


@pytest_asyncio.fixture
async def world(
    api_factory: ApiFactory, recording_sandbox: str, medusa_writer: asyncpg.Connection
) -> AsyncIterator[World]:
    """A selling app and an authorizing app on the recording sandbox, webhooks on, no worker."""
    gateway = SandboxBackend(recording_sandbox)
    at_gateway = {
        "netvalve_base_url": gateway.url,
        "netvalve_hpf_url": gateway.url,
        "netvalve_hpp_url": gateway.url,
        "netvalve_backoffice_url": gateway.url,
    }
    try:
        apis: dict[str, Api] = {
            "sale": await api_factory(**APP_SETTINGS, **at_gateway),
            "manual": await api_factory(
                **APP_SETTINGS, **at_gateway, netvalve_capture_mode="manual"
            ),
        }
        for api in apis.values():
            api.sandbox = gateway
        services = {
            mode: build_webhook_service(api.http._transport.app.state.resources)  # type: ignore[attr-defined]
            for mode, api in apis.items()
        }
        reset = await gateway.admin.post("/_sandbox/reset")
        assert reset.status_code == 204, reset.text
        yield World(asyncio.get_running_loop(), apis, services, gateway)
    finally:
        await gateway.close()
        await medusa_writer.execute("DELETE FROM webhook_events")


async def test_the_ledger_state_machine(world: World) -> None:
    bound = world

    class Machine(LedgerMachine):
        world = bound

    await asyncio.to_thread(run_state_machine_as_test, Machine, settings=MACHINE_SETTINGS)


class TestFoundByTheMachine:
    """Failures the machine found, as their shortest sequences: plain tests, so that each
    stays checked whatever examples the machine happens to draw."""

    async def test_a_lost_answer_settled_as_declined_is_a_402(self, world: World):
        api = world.apis["sale"]
        medusa = await api.medusa_session()
        await world.gateway.fault("/sale", "reset")

        response = await api.post(
            "/payment",
            {
                "payment_session_id": medusa.session_id,
                "payment_token": await api.token(DECLINE_CARD),
            },
            key=STOREFRONT_KEY,
        )

        assert response.status_code == 402, response.text
        assert response.json()["error"] == "PaymentDeclined"
        assert response.json()["payment"]["status"] == "error"

    async def test_gateway_refunds_counted_from_the_record_are_not_counted_again(
        self, world: World
    ):
        api = world.apis["sale"]
        paid = (await api.pay(await api.medusa_session(amount="44.00"))).json()
        outside = await world.gateway.client.refund(paid["transaction_id"], Decimal("4.00"))
        assert isinstance(outside, Approved)
        await world.gateway.fault("/refund", "reset")

        refunded = await api.post("/refund", {"payment_id": paid["id"], "amount": "10.00"})
        assert refunded.status_code == 200, refunded.text
        assert refunded.json()["refunded_amount"] == "14.00"  # NetValve's record holds both
        [event] = [
            e
            for e in await sent_events(world)
            if e["data"]["transactionId"] == outside.transaction_id
        ]
        assert (await deliver(api, event)).status_code == 200
        assert await drain(world) == []

        status = (await api.get("/status", {"payment_id": paid["id"]})).json()
        assert status["refunded_amount"] == "14.00"

    async def test_a_refund_event_that_overtakes_its_capture_event_is_applied(self, world: World):
        api = world.apis["manual"]
        authorized = (await api.pay(await api.medusa_session(amount="44.00"))).json()
        captured = await world.gateway.client.capture(
            authorized["transaction_id"], Decimal("44.00")
        )
        refunded = await world.gateway.client.refund(authorized["transaction_id"], Decimal("10.00"))
        assert isinstance(captured, Approved)
        assert isinstance(refunded, Approved)
        events = {e["data"]["transactionId"]: e for e in await sent_events(world)}

        await deliver(api, events[refunded.transaction_id])
        await drain(world)
        await deliver(api, events[captured.transaction_id])
        waiting = await drain(world)

        status = (await api.get("/status", {"payment_id": authorized["id"]})).json()
        assert (status["state"], status["captured_amount"], status["refunded_amount"]) == (
            "partially_refunded",
            "44.00",
            "10.00",
        )
        assert waiting == []
