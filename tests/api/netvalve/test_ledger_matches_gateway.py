"""The money-flow tests' comparison of the ledger with the sandbox's record can fail: a ledger
that says what the sandbox did not do is caught, by amount, by type and by count."""

import re
import uuid
from decimal import Decimal

import pytest

from tests.fixtures.api import Api
from tests.fixtures.ledger import gateway_summary


def transaction(id_: int, kind: str, amount: str, order: str = "ab-1") -> dict[str, object]:
    return {
        "transactionId": id_,
        "transactionType": kind,
        "clientOrderId": order,
        "amount": Decimal(amount),
        "responseCode": "GTW_1000",
    }


class TestGatewaySummary:
    def test_an_authorization_alone_is_authorized_with_nothing_captured(self):
        summary = gateway_summary([transaction(1, "AUTHORIZATION", "44.00")], 1)

        assert (summary["state"], summary["authorized"], summary["captured"]) == (
            "authorized",
            4400,
            0,
        )

    def test_captures_and_refunds_of_another_attempt_are_not_the_charges(self):
        summary = gateway_summary(
            [
                transaction(1, "SALE", "44.00", "ab-1"),
                transaction(2, "SALE", "44.00", "ab-2"),
                transaction(3, "REFUND", "4.00", "ab-2"),
            ],
            1,
        )

        assert (summary["state"], summary["refunded"], summary["extra_charged"]) == (
            "captured",
            0,
            4000,
        )

    def test_a_charge_the_sandbox_did_not_approve_is_no_charge(self):
        declined = {**transaction(1, "SALE", "44.00"), "responseCode": "BNK_2005"}

        summary = gateway_summary([declined], 1)

        assert (summary["state"], summary["transaction_id"], summary["declined"]) == (
            "requires_payment",
            None,
            [1],
        )


@pytest.mark.asyncio
class TestAgainstTheSandbox:
    async def test_a_ledger_that_says_what_the_sandbox_did_passes(self, manual_api: Api):
        authorized = (await manual_api.pay(await manual_api.medusa_session())).json()
        captured = await manual_api.post(
            "/capture", {"payment_id": authorized["id"], "amount": "30.00"}
        )
        assert captured.status_code == 200, captured.text

        await manual_api.assert_ledger_matches_gateway(authorized["id"])

    async def test_a_capture_the_sandbox_never_made_fails(self, manual_api: Api):
        authorized = (await manual_api.pay(await manual_api.medusa_session())).json()
        await manual_api.medusa.execute(
            "UPDATE payments SET state = 'captured', captured_minor = 2500, "
            "settled_transaction_id = transaction_id WHERE id = $1",
            uuid.UUID(authorized["id"]),
        )

        mismatch = re.escape("'captured': {'ledger': 2500, 'gateway': 0}")
        with pytest.raises(AssertionError, match=mismatch):
            await manual_api.assert_ledger_matches_gateway(authorized["id"])

    async def test_a_refund_only_the_sandbox_knows_of_fails(self, api: Api):
        paid = (await api.pay(await api.medusa_session())).json()
        outside = await api.sandbox.client.refund(paid["transaction_id"], Decimal("4.00"))
        assert outside.response_code == "GTW_1000"  # type: ignore[union-attr]

        with pytest.raises(AssertionError, match="is not the gateway's record"):
            await api.assert_ledger_matches_gateway(paid["id"])

    async def test_an_approved_attempt_of_another_amount_fails(self, api: Api):
        paid = (await api.pay(await api.medusa_session())).json()
        refunded = await api.post("/refund", {"payment_id": paid["id"], "amount": "10.00"})
        assert refunded.status_code == 200, refunded.text
        await api.medusa.execute(
            "UPDATE payment_attempts SET amount_minor = 1100 "
            "WHERE payment_id = $1 AND operation = 'refund'",
            uuid.UUID(paid["id"]),
        )

        with pytest.raises(AssertionError, match="is not the gateway's record"):
            await api.assert_ledger_matches_gateway(paid["id"])

    async def test_a_lost_approved_attempt_fails(self, api: Api):
        paid = (await api.pay(await api.medusa_session())).json()
        refunded = await api.post("/refund", {"payment_id": paid["id"], "amount": "10.00"})
        assert refunded.status_code == 200, refunded.text
        await api.medusa.execute(
            "UPDATE payment_attempts SET outcome = 'unknown' "
            "WHERE payment_id = $1 AND operation = 'refund'",
            uuid.UUID(paid["id"]),
        )

        with pytest.raises(AssertionError, match="is not the gateway's record"):
            await api.assert_ledger_matches_gateway(paid["id"])
