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

The gateway also misbehaves the way NetValve may: a sale is left pending (the 1002.00 trigger
amount) and settled later, approved or declined; a sale is answered with an error and processed
only later, after the service gave it up as not found and the shopper may have paid again (an
extra charge the ledger must flag); requests are still in flight at the gateway while webhooks
are delivered and the sweep runs; and forged events arrive: another type, another payment's
order, another amount, a transaction that does not exist, or no transaction id at all. After
every step, for every payment session, the approved money at the sandbox (sales and captures,
less refunds) equals what the ledger shows, extra charges included, and every transaction at
the sandbox belongs to a payment the ledger knows.

The machine is synchronous: the test runs it in a worker thread, and each step runs its
coroutines on the session event loop that owns the apps, the database pools and the clients.
`make test` runs LEDGER_MACHINE_EXAMPLES (500) sequences of up to LEDGER_MACHINE_STEPS (8) steps
with a fixed seed; LEDGER_MACHINE_RANDOM=1 draws a new seed for a longer search (README).
"""

import asyncio
import json
import os
import random
import time
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
from hypothesis import event as tally
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

from app.api.deps import (
    build_gateway_event_service,
    build_netvalve_service,
    build_webhook_service,
)
from app.clients.netvalve import Approved
from app.services.netvalve import NetvalveService
from app.services.netvalve.events import GatewayEventService
from app.services.netvalve.webhooks import WebhookService
from tests.fixtures.api import ADMIN_KEY, STOREFRONT_KEY, Api, ApiFactory, MedusaSession
from tests.fixtures.gateway import APPROVE_CARD, DECLINE_CARD, SandboxBackend
from tests.fixtures.ledger import assert_ledger_matches_record
from tests.fixtures.webhooks import (
    WEBHOOK_SETTINGS,
    dedup_key_of,
    post_webhook,
    process_inbox_round,
)

pytestmark = pytest.mark.asyncio

T = TypeVar("T")

APP_SETTINGS: dict[str, Any] = {
    **WEBHOOK_SETTINGS,  # the worker off: the machine drains the inbox itself
    "webhook_retry_base_seconds": 0.05,
    "reconcile_min_age_seconds": 0,  # the machine sweeps itself, whenever it likes
    "reconcile_recheck_not_found_seconds": 0,
    "webhook_max_attempts": 100,  # a waiting event is retried at every drain of an example
    "netvalve_read_timeout": 10.0,  # requests held at the gateway while events arrive
}
STEP_TIMEOUT = 60.0
MAX_PAYMENTS = 4  # per example: steps go to operating on payments more than to making them
DRAIN_ROUNDS = 6
PENDING_AMOUNT = 100_200  # 1002.00: the sandbox leaves a good card's payment pending
MID_FLIGHT_MS = 300  # how long the gateway holds a request while events and sweeps run

REFUNDABLE = {"captured", "partially_refunded"}
SETTLED = {"captured", "partially_refunded", "refunded"}
# Where a state may be at the next observation (one step can apply several webhooks).
NEXT_STATES = {
    "requires_payment": {"requires_payment", "pending", "authorized", "captured"},
    "pending": {"pending", "requires_payment", "authorized", "captured"},
    "authorized": {"authorized", "captured", "partially_refunded", "refunded", "canceled"},
    "captured": {"captured", "partially_refunded", "refunded"},
    "partially_refunded": {"partially_refunded", "refunded"},
    "refunded": {"refunded"},  # terminal
    "canceled": {"canceled"},  # terminal
}
MEDUSA_STATUS = {
    "requires_payment": "error",  # every such payment here has had a declined attempt
    "pending": "pending",
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
starts = st.sampled_from(["paid", "given up", "paid again", "pending", "late"])
FORGERIES = ("retype", "other_order", "amount", "no_such_transaction", "no_transaction_id")
ROOT_TYPES = ("SALE", "AUTHORIZATION")
APPROVED_EVENTS = {
    "PURCHASED": "SALE",
    "AUTHORISED": "AUTHORIZATION",
    "CAPTURED": "CAPTURE",
    "REFUNDED": "REFUND",
    "CANCELLED": "CANCEL",
}
OUTSIDE_KIND = {"CAPTURE": "capture", "REFUND": "refund", "CANCEL": "cancel"}
modes = st.sampled_from(["sale", "manual"])
declines = st.sampled_from([False, False, True])
amounts = st.integers(100, 99_999)  # 1.00 to 999.99: below the sandbox's trigger amounts
hows = st.sampled_from(["all", "part", "exact", "over"])
percents = st.integers(1, 99)
references = st.sampled_from(["payment_id", "transaction_id"])
seeds = st.integers(0, 2**32 - 1)


def shuffled(indices: range, seed: int) -> list[int]:
    order = list(indices)
    random.Random(seed).shuffle(order)  # noqa: S311 (an order of test events)
    return order


def cents(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


def minor_of(value: object) -> int:
    return int((Decimal(str(value)) * 100).to_integral_exact())


@dataclass
class OutsideOp:
    """An operation made at the sandbox directly, which the ledger learns of by webhook; or a
    sale NetValve processed after the service had given it up (`charge`), which the ledger
    learns of by webhook or by the sweep's second look."""

    kind: str  # capture | cancel | refund | charge
    transaction_id: int
    amount: int
    delivered: bool = False
    sweepable: bool = False  # a charge the sweep's second look will find
    client_order_id: str | None = None  # a charge's: the attempt NetValve processed late


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
    extra: int = 0
    """Approved at the gateway beyond the payment's charge, and known to the ledger."""
    extra_ids: set[int] = field(default_factory=set)
    held: bool = False
    """A sale the gateway answered with an error and holds, unprocessed, until released."""
    held_rechecked: bool = False
    """The sweep looked for the held sale once already (and will not look again)."""

    def __repr__(self) -> str:
        return self.label

    @property
    def hex(self) -> str:
        return uuid.UUID(self.payment_id).hex if self.payment_id else ""

    def pending(self, kind: str) -> list[OutsideOp]:
        return [op for op in self.outside if op.kind == kind]

    @property
    def paid_mode_state(self) -> str:
        return "captured" if self.mode == "sale" else "authorized"

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
                if op.kind == "charge" and self.state == "requires_payment":
                    tally("late: the payment's charge")
                    # A late approval of a payment with no charge is its charge.
                    self.state = self.paid_mode_state
                    self.transaction_id = op.transaction_id
                    self.authorized = op.amount
                    self.captured = op.amount if self.mode == "sale" else 0
                elif op.kind == "charge" and self.state != "pending":
                    tally("late: an extra charge")
                    self.extra += op.amount  # beyond the payment's own charge: flagged
                    self.extra_ids.add(op.transaction_id)
                elif op.kind == "capture" and self.state == "authorized":
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
    payments: dict[str, NetvalveService]
    events: dict[str, GatewayEventService]

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


async def sent_events(world: World) -> list[dict[str, Any]]:
    """The events the sandbox sent for its transactions since its last reset: one each, and
    a second for a pending payment once it is settled."""
    admin = world.gateway.admin
    events: list[dict[str, Any]] = []
    ids: set[int] = set()
    for _ in range(250):
        transactions = (await admin.get("/_sandbox/transactions")).json()["transactions"]
        ids = {transaction["transactionId"] for transaction in transactions}
        delivered = (await admin.get("/_sandbox/webhooks")).json()["delivered"]
        # A delivery still under way at the reset may land after it: not this example's.
        events = [event for event in delivered if event["data"]["transactionId"] in ids]
        if {event["data"]["transactionId"] for event in events} == ids:
            break
        await asyncio.sleep(0.02)
    assert {event["data"]["transactionId"] for event in events} == ids, (
        "the sandbox did not send an event for every transaction"
    )
    return events


async def settled_event(world: World, transaction_id: int) -> None:
    """Wait for the second event of a pending payment NetValve has now decided."""
    for _ in range(250):
        delivered = (await world.gateway.admin.get("/_sandbox/webhooks")).json()["delivered"]
        if sum(event["data"]["transactionId"] == transaction_id for event in delivered) >= 2:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"no event for the settling of {transaction_id}")


async def deliver(api: Api, event: dict[str, Any]) -> httpx.Response:
    return await post_webhook(api.http, event)


async def drain(world: World, workers: int = 1) -> list[dict[str, Any]]:
    """Run the webhook workers until nothing is left to do; returns the events still waiting.
    Retries are made due at once, as if their back-off had passed."""
    services = [world.services["sale"], world.services["manual"]]
    medusa = world.apis["sale"].medusa
    waiting: list[dict[str, Any]] = []
    for _ in range(DRAIN_ROUNDS):
        await process_inbox_round(medusa, services[:workers])
        rows = await medusa.fetch(
            "SELECT event_name, transaction_id, status, last_error, payment_id FROM webhook_events "
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
        self.mid_flight: st.DataObject | None = None
        """While set, `send` holds its request at the gateway and delivers webhooks and runs
        the sweep before letting it through."""
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
        request = api.post(path, body, key=key, idempotency_key=idempotency_key)
        if self.mid_flight is not None and tracked.payment_id is not None:
            response = self._meanwhile(tracked, request, gateway_path or path, self.mid_flight)
        else:
            response = self.world.run(request)
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

    def _meanwhile(
        self,
        tracked: Tracked,
        request: Coroutine[Any, Any, httpx.Response],
        gateway_path: str,
        data: st.DataObject,
    ) -> httpx.Response:
        """Send `request` while the gateway holds it: once the payment shows the operation in
        flight, deliver every event sent so far in any order, drain the inbox and sweep, then
        let the gateway process it. Nothing that happens meanwhile may be taken for its answer."""
        admin, loop = self.world.gateway.admin, self.world.loop
        hold = {"path": gateway_path, "kind": "hold", "times": 1, "delay_seconds": 20}
        assert self.world.run(admin.post("/_sandbox/faults", json=hold)).status_code == 201
        future = asyncio.run_coroutine_threadsafe(request, loop)
        try:
            api = self.api(tracked)
            for _ in range(200):
                shown = self.world.run(api.get("/status", {"payment_id": tracked.payment_id}))
                if future.done() or shown.json()["in_progress"] is not None:
                    break
                time.sleep(0.01)
            else:
                raise AssertionError("the request neither ended nor showed in flight")
            events = self.world.run(sent_events(self.world))
            order = shuffled(range(len(events)), data.draw(seeds, label="mid-flight order"))
            for event in (events[index] for index in order):
                self._deliver_one(event, genuine=True)
            self.world.run(drain(self.world))
            self._sweep()
        finally:
            self.world.run(admin.post("/_sandbox/faults/release", params={"kind": "hold"}))
            self.world.run(admin.delete("/_sandbox/faults"))
        return future.result(STEP_TIMEOUT)

    def _sweep(self) -> None:
        """Both apps' sweeps: settle what is open, and look once more at sales given up."""
        for mode in ("sale", "manual"):
            self.world.run(self.world.payments[mode].sweep_once(limit=100))
            self.world.run(self.world.events[mode].recheck_not_found(limit=100))
        for tracked in self.tracked:
            if tracked.held:
                tracked.held_rechecked = True  # looked for, not found: not looked for again
            for op in tracked.outside:
                if op.kind == "charge" and op.sweepable:
                    op.delivered = True

    def gateway_transactions(self) -> list[dict[str, Any]]:
        response = self.world.run(self.world.gateway.admin.get("/_sandbox/transactions"))
        return list(response.json()["transactions"])

    # --- rules: payments ---------------------------------------------------------------------

    @initialize(target=payments, amount=amounts, start=starts)
    def start_with_a_sale(self, amount: int, start: str) -> Tracked:
        return self._start("sale", amount, start)

    @initialize(target=payments, amount=amounts, start=starts)
    def start_with_an_authorization(self, amount: int, start: str) -> Tracked:
        return self._start("manual", amount, start)

    def _start(self, mode: str, amount: int, start: str) -> Tracked:
        """Each example begins with two payments, each paid, left pending by NetValve, or
        processed late by it (in time, or after the service gave it up, and perhaps paid again
        meanwhile: then NetValve's late approval is an extra charge)."""
        if start == "pending":
            return self._new_payment(mode, False, PENDING_AMOUNT, None)
        if start in ("late", "given up", "paid again"):
            tracked = self._pay_late(mode, amount, give_up=start != "late")
            if start == "paid again":
                self._pay(tracked, False, None)
            return tracked
        return self._new_payment(mode, False, amount, None)

    @precondition(lambda self: len(self.tracked) < MAX_PAYMENTS)
    @rule(
        target=payments,
        mode=modes,
        decline=declines,
        amount=amounts,
        fault=faults,
        pending=st.booleans(),
    )
    def pay(
        self, mode: str, decline: bool, amount: int, fault: str | None, pending: bool
    ) -> Tracked:
        """A new payment; with `pending`, of the amount for which NetValve leaves a good
        card's payment pending (settled later by `settle_pending`)."""
        return self._new_payment(mode, decline, PENDING_AMOUNT if pending else amount, fault)

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
        left_pending = tracked.amount == PENDING_AMOUNT and not decline
        before = 0 if charges else len(self.gateway_transactions())
        response = self.send(
            tracked,
            "/payment",
            body,
            key=STOREFRONT_KEY,
            fault=fault if charges and not left_pending else None,
            gateway_path="/sale" if tracked.mode == "sale" else "/authorize",
        )
        if not charges:
            if tracked.state == "canceled":
                expect(response, 409, "PaymentStateConflict")
            elif tracked.state == "pending":
                expect(response, 409, "PaymentInProgress")
            else:  # a new token on a paid session: 409 with the payment (issue 12)
                answer = expect(response, 409, "AlreadyPaid")["payment"]
                assert (answer["id"], answer["state"]) == (tracked.payment_id, tracked.state)
            assert len(self.gateway_transactions()) == before, "a paid session was charged again"
            return
        if decline:
            payment = expect(response, 402, "PaymentDeclined")["payment"]
            assert (payment["state"], payment["status"]) == ("requires_payment", "error")
        elif left_pending and response.status_code == 202:
            payment = response.json()
            assert (payment["state"], payment["in_progress"]) == ("pending", self._root_op(tracked))
            tracked.state = "pending"
        else:  # approved (a pending one may have been settled within the request's budget)
            payment = expect(response, 200)
            self._paid(tracked, payment)
        tracked.payment_id = tracked.payment_id or payment["id"]
        assert payment["id"] == tracked.payment_id

    def _paid(self, tracked: Tracked, payment: dict[str, Any]) -> None:
        tracked.state = tracked.paid_mode_state
        tracked.transaction_id = payment["transaction_id"]
        tracked.authorized = tracked.amount
        tracked.captured = tracked.amount if tracked.mode == "sale" else 0
        assert payment["state"] == tracked.state

    @staticmethod
    def _root_op(tracked: Tracked) -> str:
        return "sale" if tracked.mode == "sale" else "authorize"

    @precondition(lambda self: any(t.state == "pending" for t in self.tracked))
    @rule(index=st.integers(0, MAX_PAYMENTS), approve=st.booleans())
    def settle_pending(self, index: int, approve: bool) -> None:
        """NetValve decides a payment it left pending, approving or declining it; a status
        refresh then shows what NetValve decided, and its webhook arrives later."""
        waiting = [tracked for tracked in self.tracked if tracked.state == "pending"]
        tracked = waiting[index % len(waiting)]
        [root] = [
            t
            for t in self._mine(tracked)
            if t["transactionType"] in ROOT_TYPES and t["responseCode"] == "GTW_1002"
        ]
        resolved = self.world.run(
            self.world.gateway.admin.post(
                f"/_sandbox/transactions/{root['transactionId']}/resolve",
                params={"approve": str(approve).lower()},
            )
        )
        assert resolved.status_code == 200, resolved.text
        self.world.run(settled_event(self.world, root["transactionId"]))
        refreshed = self.world.run(
            self.api(tracked).get("/status", {"payment_id": tracked.payment_id, "refresh": "true"})
        )
        ledger = expect(refreshed, 200)
        assert ledger["state"] == (tracked.paid_mode_state if approve else "requires_payment")
        self._observe_pending(tracked, ledger)

    def _observe_pending(self, tracked: Tracked, ledger: dict[str, Any]) -> None:
        """A payment the model holds as pending, as the ledger now shows it: settled the way
        NetValve's own record says, or still pending while NetValve has not decided."""
        roots = [t for t in self._mine(tracked) if t["transactionType"] in ROOT_TYPES]
        approved = [t for t in roots if t["responseCode"] == "GTW_1000"]
        if ledger["state"] == "pending":
            assert not approved or ledger["in_progress"], (tracked, ledger, roots)
            return
        tally(f"pending: settled {'approved' if approved else 'declined'}")
        if approved:
            assert ledger["transaction_id"] == approved[0]["transactionId"], (tracked, ledger)
            self._paid(tracked, ledger)
        else:
            assert (ledger["state"], ledger["status"]) == ("requires_payment", "error"), ledger
            tracked.state = "requires_payment"

    def _mine(self, tracked: Tracked) -> list[dict[str, Any]]:
        return [
            t
            for t in self.gateway_transactions()
            if str(t["clientOrderId"]).startswith(tracked.hex)
        ]

    # --- rules: a slow acquirer ------------------------------------------------------------

    @precondition(lambda self: len(self.tracked) < MAX_PAYMENTS)
    @rule(target=payments, mode=modes, amount=amounts, give_up=st.booleans())
    def pay_late(self, mode: str, amount: int, give_up: bool) -> Tracked:
        """NetValve answers a payment with a 502 and processes it later. Released in time, the
        refresh finds it; given up as not found (its grace passed), the payment can be paid
        again, and the held payment, once released (`release_late`), is an extra charge."""
        return self._pay_late(mode, amount, give_up)

    def _pay_late(self, mode: str, amount: int, give_up: bool) -> Tracked:
        api = self.world.apis[mode]
        session = self.world.run(api.medusa_session(amount=cents(amount)))
        tracked = Tracked(f"p{len(self.tracked)}", mode, session, amount)
        self.tracked.append(tracked)
        path = "/sale" if mode == "sale" else "/authorize"
        admin = self.world.gateway.admin
        late = {"path": path, "kind": "late", "status": 502, "times": 1}
        assert self.world.run(admin.post("/_sandbox/faults", json=late)).status_code == 201
        token = self.world.run(api.token(APPROVE_CARD))
        body = {"payment_session_id": session.session_id, "payment_token": token}
        payment = expect(self.send(tracked, "/payment", body, key=STOREFRONT_KEY), 202)
        assert (payment["state"], payment["in_progress"]) == ("pending", self._root_op(tracked))
        tracked.payment_id = payment["id"]
        if give_up:
            self.world.run(
                api.medusa.execute(
                    "UPDATE payment_attempts SET created_at = now() - interval '1 hour' "
                    "WHERE payment_id = $1 AND resolved_at IS NULL",
                    uuid.UUID(tracked.payment_id),
                )
            )
        else:
            others = [other for other in self.tracked if other.held]
            released = self.world.run(
                admin.post("/_sandbox/faults/release", params={"kind": "late"})
            )
            assert released.json() == {"released": 1 + len(others)}, released.text
            self._released(others)
        refreshed = self.world.run(
            api.get("/status", {"payment_id": tracked.payment_id, "refresh": "true"})
        )
        ledger = expect(refreshed, 200)
        tally(f"late: {'given up' if give_up else 'released in time'}")
        if give_up:
            assert (ledger["state"], ledger["status"]) == ("requires_payment", "error"), ledger
            tracked.held = True
        else:
            self._paid(tracked, ledger)
        return tracked

    @precondition(lambda self: any(t.held and t.state == "requires_payment" for t in self.tracked))
    @rule(index=st.integers(0, MAX_PAYMENTS), fault=faults)
    def pay_again_while_one_is_held(self, index: int, fault: str | None) -> None:
        """The shopper pays again while NetValve still holds the sale it was thought to have
        lost: when NetValve processes that one too, it is an extra charge the ledger flags."""
        held = [t for t in self.tracked if t.held and t.state == "requires_payment"]
        self._pay(held[index % len(held)], False, fault)

    @precondition(lambda self: any(t.held for t in self.tracked))
    @rule()
    def release_late(self) -> None:
        """NetValve finally processes the payments it held: each is approved, after the
        service gave it up. Only its webhook, or the sweep's second look, can tell."""
        held = [tracked for tracked in self.tracked if tracked.held]
        released = self.world.run(
            self.world.gateway.admin.post("/_sandbox/faults/release", params={"kind": "late"})
        )
        assert released.json() == {"released": len(held)}, released.text
        self._released(held)

    def _released(self, held: list[Tracked]) -> None:
        """The model of payments NetValve processed late: a charge to hear of."""
        for tracked in held:
            known = {tracked.transaction_id} | {op.transaction_id for op in tracked.outside}
            known |= tracked.extra_ids
            [late] = [
                t
                for t in self._mine(tracked)
                if t["transactionType"] in ROOT_TYPES
                and t["responseCode"] == "GTW_1000"
                and t["transactionId"] not in known
            ]
            tracked.outside.append(
                OutsideOp(
                    "charge",
                    late["transactionId"],
                    tracked.amount,
                    sweepable=not tracked.held_rechecked,
                    client_order_id=late["clientOrderId"],
                )
            )
            tracked.held = False

    @rule()
    def sweep(self) -> None:
        """The background sweep, now: settles what is open, looks once more for given-up
        sales NetValve may have processed since."""
        self._sweep()
        self._settle_inbox()

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
        elif tracked.state == "pending":
            status, error = 409, "PaymentInProgress"
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
        if status == 200 and self.mid_flight is None:
            # (Mid flight, events delivered meanwhile may already show in the answer: the
            # invariants check the ledger once they are all applied.)
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
        elif tracked.state == "pending":
            status, error = 409, "PaymentInProgress"
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
        if self.mid_flight is None:
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
        if tracked.state == "pending":
            expect(response, 409, "PaymentInProgress")
        elif tracked.state == "authorized" and tracked.pending("capture"):
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
        fresh = [event for event in events if dedup_key_of(event) not in self.stored_events]
        chooser = random.Random(data.draw(seeds, label="deliver"))  # noqa: S311
        batch = [event for event in fresh if chooser.random() < 0.5]
        self._deliver(batch, events, data)

    @rule(data=st.data())
    def deliver_every_webhook(self, data: st.DataObject) -> None:
        """Every event sent so far, and copies of any, in any order: the ledger must then hold
        everything NetValve did."""
        events = self.world.run(sent_events(self.world))
        self._deliver(list(events), events, data)
        for tracked in self.tracked:
            if tracked.state != "pending":
                assert tracked.outside == [], f"{tracked}: the model left {tracked.outside}"

    def _deliver(
        self, batch: list[dict[str, Any]], events: list[dict[str, Any]], data: st.DataObject
    ) -> None:
        # Every draw has the same shape whatever the gateway sent: Hypothesis replays the draws,
        # and the events may differ between two runs of one example (they arrive by webhook).
        copies = data.draw(
            st.lists(
                st.tuples(seeds, st.sampled_from(["exact", "restamped", "retraced"])),
                max_size=3,
            ),
            label="copies",
        )
        order_seed = data.draw(seeds, label="order")
        workers = data.draw(st.integers(1, 2), label="workers")
        if events:
            batch = batch + [self._copy(events[pick % len(events)], how) for pick, how in copies]
        if not batch:
            return
        order = shuffled(range(len(batch)), order_seed)
        for event in (batch[index] for index in order):
            self._deliver_one(event, genuine=True)
        self._settle_inbox(workers)

    def _deliver_one(self, event: dict[str, Any], *, genuine: bool) -> None:
        """POST one event; a genuine one (as NetValve sent it, or without its transaction id)
        tells the model which operation made at the gateway the ledger may now learn of."""
        owners = {tracked.hex: tracked for tracked in self.tracked if tracked.payment_id}
        owner = owners[str(event["data"]["clientOrderId"]).split("-", 1)[0]]
        receipt = self.world.run(deliver(self.api(owner), event))
        expected = "duplicate" if dedup_key_of(event) in self.stored_events else "stored"
        assert receipt.status_code == 200, receipt.text
        assert receipt.json()["status"] == expected, (event, receipt.json())
        self.stored_events.add(dedup_key_of(event))
        if genuine:
            self._mark_delivered(owner, event)

    def _mark_delivered(self, owner: Tracked, event: dict[str, Any]) -> None:
        data = event["data"]
        if data.get("transactionId") is not None:
            named = int(data["transactionId"])
            for tracked in self.tracked:
                for op in tracked.outside:
                    op.delivered = op.delivered or op.transaction_id == named
            return
        kind = APPROVED_EVENTS.get(event["eventName"])
        if kind is None:
            return  # a failed or pending event moves no money, with or without its id
        # Without an id, NetValve's order of the event's clientOrderId is searched for a
        # transaction of that type and amount the ledger does not hold: any such one will do.
        amount = minor_of(data["amount"])
        for op in owner.outside:
            same = (
                op.kind == "charge" and op.client_order_id == data["clientOrderId"]
                if kind in ROOT_TYPES
                else op.kind == OUTSIDE_KIND[kind]
            )
            if same and op.amount == amount and not op.delivered:
                op.delivered = True
                return

    def _settle_inbox(self, workers: int = 1) -> None:
        """Drain the inbox; then every event is done with, but those that wait, rightly, for an
        event still undelivered, or for a payment NetValve has left pending."""
        for tracked in self.tracked:
            tracked.apply_delivered()
        waiting = self.world.run(drain(self.world, workers))
        blocked = {op.transaction_id for t in self.tracked for op in t.outside if op.delivered}
        pending = {t.payment_id for t in self.tracked if t.state == "pending"}
        unsettled = [
            row
            for row in waiting
            if row["transaction_id"] not in blocked and str(row["payment_id"]) not in pending
        ]
        assert unsettled == [], f"webhook events left unsettled: {unsettled}"

    @rule(data=st.data(), how=st.sampled_from(FORGERIES))
    def deliver_a_forged_webhook(self, data: st.DataObject, how: str) -> None:
        """An event that must prove nothing: another type, another payment's order, another
        amount, a transaction NetValve does not have. Without its transaction id, a genuine
        event still proves what it says, through NetValve's order."""
        pick, other = data.draw(seeds, label="forge from"), data.draw(seeds, label="pointed at")
        events = self.world.run(sent_events(self.world))
        if not events:
            return
        event = json.loads(json.dumps(events[pick % len(events)]))
        body, name = event["data"], event["eventName"]
        others = [t for t in self.tracked if t.payment_id and t.hex not in body["clientOrderId"]]
        if how == "retype":
            names = sorted(set(APPROVED_EVENTS) - {name})
            event["eventName"] = names[other % len(names)]
        elif how == "other_order" and others:
            body["clientOrderId"] = f"{others[other % len(others)].hex}-1"
        elif how == "no_such_transaction":
            body["transactionId"] = int(body["transactionId"]) + 10**9
        elif how == "no_transaction_id":
            del body["transactionId"]
        else:  # another amount (also when there is no other payment to point at)
            body["amount"] = float(Decimal(str(body["amount"])) * 2 + 1)
        body["traceId"] = str(uuid.uuid4())  # each forgery is a new event to the inbox
        tally(f"forged: {how}")
        self._deliver_one(event, genuine=how == "no_transaction_id")
        self._settle_inbox()

    @rule(
        data=st.data(),
        kind=st.sampled_from(["pay_again", "refund", "capture", "cancel"]),
        tracked=payments,
    )
    def operate_while_events_arrive(self, data: st.DataObject, kind: str, tracked: Tracked) -> None:
        """The same operations, but held in flight at the gateway while every event sent so far
        is delivered, in any order, and the sweep runs: none of that is the operation's answer,
        and the operation's answer, when it comes, is still its own."""
        decline = data.draw(declines, label="decline")
        how = data.draw(hows, label="how")
        percent = data.draw(percents, label="percent")
        by = data.draw(references, label="by")
        self.mid_flight = data
        tally(f"in flight: {kind} while {tracked.state}")
        try:
            if kind == "pay_again":
                if tracked.state == "requires_payment":
                    self._pay(tracked, decline, None)
            elif kind == "cancel":
                self.cancel(tracked, by, None)
            else:
                operate = self.refund if kind == "refund" else self.capture
                operate(tracked, how, percent, by, None)
        finally:
            self.mid_flight = None
        self._settle_inbox()

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
        # Over the whole sandbox: every transaction is of a payment the ledger knows.
        prefixes = {tracked.hex for tracked in known}
        strays = [t for t in transactions if str(t["clientOrderId"]).split("-")[0] not in prefixes]
        assert strays == [], f"transactions of no payment the ledger knows: {strays}"
        for tracked, response in zip(known, statuses, strict=True):
            assert response.status_code in (200, 202), response.text
            ledger = response.json()
            if tracked.state == "pending":
                self._observe_pending(tracked, ledger)
            self._check(tracked, ledger, transactions)

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
        authorized, captured, refunded, extra = (
            minor_of(ledger[f"{kind}_amount"])
            for kind in ("authorized", "captured", "refunded", "extra_charged")
        )
        if state == "pending":
            assert ledger["in_progress"] == self._root_op(tracked), (name, ledger)
        else:
            assert ledger["in_progress"] is None, f"{name}: an operation was left in flight"

        # The money invariants, and a state that says what the amounts say.
        assert 0 <= refunded <= captured <= authorized <= tracked.amount, (name, ledger)
        assert minor_of(ledger["amount"]) == tracked.amount, name
        shape = {
            "requires_payment": authorized == 0,
            "pending": authorized == 0,
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
        roots = [t for t in mine if t["transactionType"] in ROOT_TYPES]
        approved = [t for t in roots if t["responseCode"] == "GTW_1000"]
        charge = next((t for t in approved if t["transactionId"] == tracked.transaction_id), None)
        beyond = [t for t in approved if t is not charge]
        late = [op for op in tracked.outside if op.kind == "charge"]
        # Every approved sale or authorization is the charge, an extra charge the ledger
        # flags, or one processed late that the ledger is still to hear of.
        assert sum(minor_of(t["amount"]) for t in beyond) == extra + sum(
            op.amount for op in late
        ), f"{name}: approved beyond the charge {beyond}, flagged {extra}, to hear of {late}"
        assert extra == tracked.extra, f"{name}: extra charged {extra}, model {tracked.extra}"
        children = [
            t
            for t in mine
            if charge is not None
            and t["clientOrderId"] == charge["clientOrderId"]
            and t["transactionType"] not in ROOT_TYPES
        ]
        captures = [t for t in children if t["transactionType"] == "CAPTURE"]
        assert len(captures) <= 1, f"{name}: captured more than once"
        settled = (
            charge if charge and charge["transactionType"] == "SALE" else next(iter(captures), None)
        )
        canceled = any(t["transactionType"] == "CANCEL" for t in children)
        gateway = (
            minor_of(charge["amount"]) if charge else 0,
            minor_of(settled["amount"]) if settled else 0,
            sum(minor_of(t["amount"]) for t in children if t["transactionType"] == "REFUND"),
        )
        unreported = (
            sum(op.amount for op in tracked.pending("capture")),
            sum(op.amount for op in tracked.pending("refund")),
        )
        assert (authorized, captured + unreported[0], refunded + unreported[1]) == gateway, (
            f"{name}: ledger {amounts}, not yet reported {unreported}, gateway {gateway}"
        )
        # The money at the sandbox (sales and captures, less refunds) is the ledger's, extra
        # charges included, plus what only undelivered webhooks could have told it.
        sales = sum(minor_of(t["amount"]) for t in approved if t["transactionType"] == "SALE")
        held = sales + sum(minor_of(t["amount"]) for t in captures)
        ledger_money = captured - refunded + (extra if tracked.mode == "sale" else 0)
        late_sales = sum(op.amount for op in late) if tracked.mode == "sale" else 0
        assert held - gateway[2] == (ledger_money + unreported[0] - unreported[1] + late_sales), (
            f"{name}: NetValve holds {held - gateway[2]}, the ledger shows {ledger_money}"
        )
        pending_root = next((t for t in roots if t["responseCode"] == "GTW_1002"), None)
        if state == "pending":
            assert ledger["transaction_id"] in (None, (pending_root or {}).get("transactionId"))
        else:
            assert ledger["transaction_id"] == (charge["transactionId"] if charge else None), name
        assert canceled == (state == "canceled" or bool(tracked.pending("cancel"))), name
        if canceled:
            gateway_state = "canceled"
        elif settled is not None:
            gateway_state = SANDBOX_SETTLED_STATUS[settled["status"]]
        elif charge is not None:
            assert charge["status"] == "Authorised", (name, charge)
            gateway_state = "authorized"
        else:
            gateway_state = "pending" if state == "pending" else "requires_payment"
        if not tracked.outside:
            assert state == gateway_state, f"{name}: ledger {state}, gateway {gateway_state}"

        # The model: what each answer and each delivered event should have done.
        assert (state, *amounts) == (
            tracked.state,
            tracked.authorized,
            tracked.captured,
            tracked.refunded,
        ), f"{name}: ledger {(state, *amounts)}, model {tracked.__dict__}"
        if state != "pending":
            assert ledger["transaction_id"] == tracked.transaction_id, name

        # The ledger's own rows (every attempt, not only the payment as /status serves it)
        # against the sandbox's record, once nothing is left for webhooks to tell.
        if state != "pending" and not tracked.outside:
            db = self.api(tracked).medusa
            self.world.run(assert_ledger_matches_record(db, str(tracked.payment_id), transactions))


RANDOM_SEARCH = os.environ.get("LEDGER_MACHINE_RANDOM") == "1"
MACHINE_SETTINGS = settings(
    max_examples=int(os.environ.get("LEDGER_MACHINE_EXAMPLES", "500")),
    stateful_step_count=int(os.environ.get("LEDGER_MACHINE_STEPS", "8")),
    derandomize=not RANDOM_SEARCH,  # a fixed seed in `make test`; a new one when asked
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
        resources = {mode: api.resources for mode, api in apis.items()}
        reset = await gateway.admin.post("/_sandbox/reset")
        assert reset.status_code == 204, reset.text
        yield World(
            asyncio.get_running_loop(),
            apis,
            {mode: build_webhook_service(found) for mode, found in resources.items()},
            gateway,
            {mode: build_netvalve_service(found) for mode, found in resources.items()},
            {mode: build_gateway_event_service(found) for mode, found in resources.items()},
        )
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
        await api.assert_ledger_matches_gateway(response.json()["payment"]["id"])

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
        await api.assert_ledger_matches_gateway(paid["id"])

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
        await api.assert_ledger_matches_gateway(authorized["id"])
