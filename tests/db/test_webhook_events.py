import uuid

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError

from app.models import WebhookEvent, WebhookEventStatus

pytestmark = pytest.mark.asyncio

BODY = b'{"eventName": "PURCHASED", "data": {"transactionId": 18747}}'


def event_values(**overrides: object) -> dict[str, object]:
    values: dict[str, object] = {
        "dedup_key": uuid.uuid4().hex,
        "event_name": "PURCHASED",
        "transaction_id": 18747,
        "client_order_id": "pay_01JABC",
        "raw_body": BODY,
        "payload": {"eventName": "PURCHASED", "data": {"transactionId": 18747}},
        "headers": {"content-type": "application/json"},
    }
    values.update(overrides)
    return values


class TestWebhookEventTable:
    async def test_defaults_on_insert(self, db_session):
        event = WebhookEvent(**event_values())
        db_session.add(event)
        await db_session.flush()
        await db_session.refresh(event)

        assert isinstance(event.id, uuid.UUID)
        assert event.source == "netvalve"
        assert event.status is WebhookEventStatus.RECEIVED
        assert event.attempts == 0
        assert event.received_at is not None
        assert event.processed_at is None
        assert event.raw_body == BODY

    async def test_duplicate_is_a_no_op_with_on_conflict(self, db_session):
        values = event_values()
        statement = (
            insert(WebhookEvent)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["source", "dedup_key"])
            .returning(WebhookEvent.id)
        )

        first = (await db_session.execute(statement)).scalar_one_or_none()
        second = (await db_session.execute(statement)).scalar_one_or_none()

        assert first is not None
        assert second is None
        count = await db_session.scalar(
            select(func.count()).where(WebhookEvent.dedup_key == values["dedup_key"])
        )
        assert count == 1

    async def test_plain_duplicate_insert_is_refused(self, db_session):
        values = event_values()
        db_session.add(WebhookEvent(**values))
        await db_session.flush()

        db_session.add(WebhookEvent(**values))
        with pytest.raises(IntegrityError, match="uq_webhook_events_source_dedup_key"):
            await db_session.flush()

    async def test_unknown_status_is_refused_by_the_database(self, db_session):
        db_session.add(WebhookEvent(**event_values()))
        await db_session.flush()

        with pytest.raises(IntegrityError, match="ck_webhook_events_webhook_event_status"):
            await db_session.execute(text("UPDATE webhook_events SET status = 'done'"))

    async def test_rows_from_other_tests_are_rolled_back(self, db_session):
        # Every other test here inserted rows; each ran in a transaction that was rolled back.
        assert await db_session.scalar(select(func.count()).select_from(WebhookEvent)) == 0
