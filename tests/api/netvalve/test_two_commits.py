"""A money operation commits twice: the Idempotency-Key and the ledger's claim before the call to
NetValve, the outcome and the stored answer after it (see app.db.session.Phases)."""

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Connection

from tests.fixtures.api import Api

pytestmark = pytest.mark.asyncio


@contextmanager
def commits_of_this_task(api: Api) -> Iterator[list[str]]:
    """The service's commits made by this task (the request runs in it, through the ASGI
    transport); background workers' commits are their own tasks' and are left out."""
    resources: Any = api.resources
    engine = resources.sessionmaker.kw["bind"].sync_engine
    task, commits = asyncio.current_task(), []

    def on_commit(connection: Connection) -> None:
        if asyncio.current_task() is task:
            commits.append("commit")

    event.listen(engine, "commit", on_commit)
    try:
        yield commits
    finally:
        event.remove(engine, "commit", on_commit)


class TestTwoCommitsPerMoneyOperation:
    async def test_sale_refund_each_commit_twice(self, api: Api):
        session = await api.medusa_session(amount="30.00")
        with commits_of_this_task(api) as commits:
            sale = await api.pay(session)
        assert sale.status_code == 200, sale.text
        assert len(commits) == 2

        payment_id = sale.json()["id"]
        with commits_of_this_task(api) as commits:
            refund = await api.post("/refund", {"payment_id": payment_id, "amount": "10.00"})
        assert refund.status_code == 200, refund.text
        assert len(commits) == 2
        await api.assert_ledger_matches_gateway(payment_id)

    async def test_authorize_capture_cancel_each_commit_twice(self, manual_api: Api):
        api = manual_api
        with commits_of_this_task(api) as commits:
            first = await api.pay(await api.medusa_session())
            second = await api.pay(await api.medusa_session())
        assert (first.status_code, second.status_code) == (200, 200)
        assert len(commits) == 4

        with commits_of_this_task(api) as commits:
            captured = await api.post("/capture", {"payment_id": first.json()["id"]})
            canceled = await api.post("/cancel", {"payment_id": second.json()["id"]})
        assert (captured.json()["state"], canceled.json()["state"]) == ("captured", "canceled")
        assert len(commits) == 4
        for payment in (first, second):
            await api.assert_ledger_matches_gateway(payment.json()["id"])

    async def test_a_refusal_commits_once_and_is_replayed_with_no_commit(self, api: Api):
        sale = await api.pay(await api.medusa_session(amount="30.00"))
        body = {"payment_id": sale.json()["id"], "amount": "31.00"}

        with commits_of_this_task(api) as commits:
            refused = await api.post("/refund", body, idempotency_key="refund-too-much-01")
        assert refused.status_code == 422
        assert refused.json()["error"] == "RefundExceedsCaptured"
        assert len(commits) == 1  # the key and its stored answer; nothing else was written

        with commits_of_this_task(api) as commits:
            replayed = await api.post("/refund", body, idempotency_key="refund-too-much-01")
        assert (replayed.status_code, replayed.json()) == (422, refused.json())
        assert replayed.headers["Idempotent-Replayed"] == "true"
        assert commits == []
