"""The typed fields every answer is read into, and what happens when NetValve's JSON leaves a
field out or sends it with the wrong type: the field reads as absent, the call never fails."""

from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio
import respx

from app.clients.netvalve import (
    Approved,
    Declined,
    HpfScript,
    HpfScriptList,
    HpfSessionInit,
    HppOrder,
    HppOrderRequest,
    NetvalveClient,
    PaymentRequest,
    Pending,
    read_record,
)
from app.clients.transport import create_http_client
from tests.fixtures.gateway import client_settings
from tests.fixtures.netvalve import (
    API,
    HPP,
    build_decline,
    build_hpf_session,
    build_pending,
    build_transaction_record,
    build_transaction_response,
)

pytestmark = pytest.mark.asyncio

BACKOFFICE = client_settings().netvalve_url("backoffice")
# Values a field can lie with: the wrong type, or an empty or impossible value.
NOT_TEXT: list[Any] = [None, "", 0, -5, True, 1.5, [], {}]
LIES: list[Any] = [*NOT_TEXT, "not-a-number", "-5", 2**64]
NOT_URLS: list[Any] = [*NOT_TEXT, "not-a-url", "javascript:alert(1)", "//cdn.example/x.js"]


@pytest_asyncio.fixture
async def client() -> AsyncIterator[NetvalveClient]:
    settings = client_settings()
    async with create_http_client(settings) as http:
        yield NetvalveClient(http, settings)


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_mocked=True, assert_all_called=True) as mocked:
        yield mocked


def payment() -> PaymentRequest:
    return PaymentRequest(
        amount=Decimal("44.00"), currency="EUR", client_order_id="pay_1", payment_token="t"
    )


def hpp_request() -> HppOrderRequest:
    return HppOrderRequest(
        amount=Decimal("44.00"),
        currency="EUR",
        client_order_id="pay_1",
        success_url="https://shop.example.com/ok",
        cancel_url="https://shop.example.com/cancel",
        failed_url="https://shop.example.com/failed",
    )


def without(body: dict[str, Any], *names: str) -> dict[str, Any]:
    return {name: value for name, value in body.items() if name not in names}


class TestPaymentAnswers:
    async def test_an_approval_carries_its_typed_fields(self, client, router):
        router.post(f"{API}/sale").respond(json=build_transaction_response())

        result = await client.sale(payment())

        assert isinstance(result, Approved)
        assert (result.transaction_id, result.order_id) == (18747, 5001)
        assert (result.card_number, result.card_type) == ("401200******5439", "VISA")
        assert (result.response_code, result.response_code_type) == ("GTW_1000", "APPROVED")
        assert result.response_message == "Transaction Approved/ Request Successful."

    @pytest.mark.parametrize(
        ("body", "kind"), [(build_decline(), Declined), (build_pending(), Pending)]
    )
    async def test_declines_and_pending_answers_carry_them_too(self, client, router, body, kind):
        router.post(f"{API}/sale").respond(json=body)

        result = await client.sale(payment())

        assert isinstance(result, kind)
        assert (result.transaction_id, result.card_number) == (18747, "401200******5439")

    async def test_an_id_sent_as_digits_is_read(self, client, router):
        router.post(f"{API}/sale").respond(
            json=build_transaction_response(transactionID="18747", orderId="5001")
        )

        result = await client.sale(payment())

        assert isinstance(result, Approved)
        assert (result.transaction_id, result.order_id) == (18747, 5001)

    @pytest.mark.parametrize(
        ("name", "lie"),
        [(name, lie) for name in ("transactionID", "orderId") for lie in LIES]
        + [(name, lie) for name in ("cardNumber", "cardType", "status") for lie in NOT_TEXT],
    )
    async def test_a_field_that_lies_reads_as_absent(self, client, router, name, lie):
        router.post(f"{API}/sale").respond(json=build_transaction_response(**{name: lie}))

        result = await client.sale(payment())

        assert isinstance(result, Approved)
        typed = {
            "transactionID": result.transaction_id,
            "orderId": result.order_id,
            "cardNumber": result.card_number,
            "cardType": result.card_type,
            "status": result.status,
        }
        assert typed[name] is None
        assert result.response_code == "GTW_1000"  # the rest of the answer is still read

    async def test_an_answer_with_only_a_code_has_no_typed_fields(self, client, router):
        router.post(f"{API}/sale").respond(json={"responseCode": "GTW_1000"})

        result = await client.sale(payment())

        assert isinstance(result, Approved)
        assert (result.transaction_id, result.card_number, result.card_type) == (None, None, None)

    async def test_an_inquiry_reads_the_transactions_status(self, client, router):
        router.get(f"{API}/inquiry").respond(json=build_transaction_response(status="Settled"))

        result = await client.inquiry(18747)

        assert isinstance(result, Approved)
        assert result.status == "Settled"


class TestLookups:
    async def test_a_lookup_carries_the_record(self, client, router):
        router.get(f"{API}/transaction").respond(
            json=build_transaction_record(transactionType="SALE")
        )

        result = await client.get_transaction(18747)

        assert isinstance(result, Approved)
        assert result.record is not None
        assert (result.record.transaction_id, result.record.kind) == (18747, "SALE")
        assert read_record(result) == result.record

    @pytest.mark.parametrize("lie", LIES)
    @pytest.mark.parametrize("name", ["amount", "currency", "transactions", "chargebackData"])
    async def test_a_record_field_that_lies_never_fails_the_read(self, client, router, name, lie):
        router.get(f"{API}/transaction").respond(
            json=build_transaction_record(transactionType="SALE", **{name: lie})
        )

        result = await client.get_transaction(18747)

        assert isinstance(result, Approved)
        assert result.record is not None
        assert result.record.transaction_id == 18747


class TestHostedPages:
    async def test_an_hpf_session_is_typed(self, client, router):
        router.get(f"{API}/hpf/initializeSession").respond(json=build_hpf_session())

        result = await client.initialize_hpf_session()

        assert isinstance(result, HpfSessionInit)
        assert result.payment_token == "23ee9bf0-0270-4752-8ced-000000000004"
        assert result.script_src is not None
        assert result.script_src.startswith("https://tokenfieldsdk.dev.sandbox-netvalve.com/")
        assert result.integrity == "5c1f7d0a-0000-4000-8000-000000000003"

    @pytest.mark.parametrize("lie", NOT_TEXT)
    async def test_an_hpf_session_without_a_usable_token_is_no_session(self, client, router, lie):
        router.get(f"{API}/hpf/initializeSession").respond(json=build_hpf_session(paymentToken=lie))

        result = await client.initialize_hpf_session()

        assert isinstance(result, Approved)
        assert not isinstance(result, HpfSessionInit)

    @pytest.mark.parametrize("lie", NOT_URLS)
    async def test_a_script_or_integrity_that_lies_reads_as_absent(self, client, router, lie):
        integrity = None if isinstance(lie, str) and lie else lie
        router.get(f"{API}/hpf/initializeSession").respond(
            json=build_hpf_session(netvalveScriptSrc=lie, integrity=integrity)
        )

        result = await client.initialize_hpf_session()

        assert isinstance(result, HpfSessionInit)
        assert (result.script_src, result.integrity) == (None, None)

    async def test_an_hpp_order_names_its_page(self, client, router):
        router.post(f"{HPP}/hpp/order").respond(
            json=build_transaction_response(redirectUrl="https://hpp.example/pay/1")
        )

        result = await client.create_hpp_order(hpp_request())

        assert isinstance(result, HppOrder)
        assert (result.redirect_url, result.order_id) == ("https://hpp.example/pay/1", 5001)

    @pytest.mark.parametrize("lie", NOT_URLS)
    async def test_an_hpp_order_without_a_page_is_no_order(self, client, router, lie):
        router.post(f"{HPP}/hpp/order").respond(json=build_transaction_response(redirectUrl=lie))

        result = await client.create_hpp_order(hpp_request())

        assert isinstance(result, Approved)
        assert not isinstance(result, HppOrder)


def script(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "status": "ACTIVE",
        "deleted": False,
        "isDefault": False,
        "createdDate": "2024-11-01T10:00:00Z",
        "netvalveScriptSrc": "https://cdn.example/hpf.js",
        "integrity": "sha384-abc",
    }
    values.update(overrides)
    return values


class TestBackofficeScripts:
    async def scripts(self, client, router, items: Any) -> Any:
        router.post(f"{BACKOFFICE}/backoffice/users/sign-in").respond(json={"accessToken": "a"})
        router.get(f"{BACKOFFICE}/backoffice/hpf/script").respond(json=items)
        return await client.backoffice_hpf_scripts()

    async def test_scripts_are_typed(self, client, router):
        result = await self.scripts(client, router, [script(isDefault=True), "junk", 7])

        assert isinstance(result, HpfScriptList)
        assert result.scripts == (
            HpfScript(
                script_src="https://cdn.example/hpf.js",
                integrity="sha384-abc",
                status="ACTIVE",
                deleted=False,
                is_default=True,
                created="2024-11-01T10:00:00Z",
            ),
        )

    async def test_the_newest_active_default_is_preferred(self, client, router):
        items = [
            script(
                isDefault=True, createdDate="2024-01-01", netvalveScriptSrc="https://x/old-default"
            ),
            script(
                isDefault=True, createdDate="2024-06-01", netvalveScriptSrc="https://x/new-default"
            ),
            script(createdDate="2024-12-01", netvalveScriptSrc="https://x/newest-plain"),
            script(isDefault=True, createdDate="2025-01-01", status="INACTIVE"),
            script(isDefault=True, createdDate="2025-02-01", deleted=True),
        ]

        result = await self.scripts(client, router, items)

        assert isinstance(result, HpfScriptList)
        assert result.preferred is not None
        assert result.preferred.script_src == "https://x/new-default"

    async def test_without_a_default_the_newest_active_script_is_preferred(self, client, router):
        items = [
            script(createdDate="2024-01-01", netvalveScriptSrc="https://x/older"),
            script(createdDate="2024-06-01", netvalveScriptSrc="https://x/newer"),
            script(createdDate="2025-01-01", netvalveScriptSrc=None),
            script(createdDate="2025-02-01", netvalveScriptSrc="javascript:alert(1)"),
        ]

        result = await self.scripts(client, router, items)

        assert isinstance(result, HpfScriptList)
        assert result.preferred is not None
        assert result.preferred.script_src == "https://x/newer"

    @pytest.mark.parametrize("deleted", ["false", 1, "no", []])
    async def test_a_deleted_flag_in_doubt_means_deleted(self, client, router, deleted):
        result = await self.scripts(client, router, [script(deleted=deleted)])

        assert isinstance(result, HpfScriptList)
        assert result.preferred is None

    async def test_a_default_flag_that_is_not_true_means_not_default(self, client, router):
        items = [
            script(
                isDefault="true", createdDate="2024-06-01", netvalveScriptSrc="https://x/claims"
            ),
            script(isDefault=True, createdDate="2024-01-01", netvalveScriptSrc="https://x/default"),
        ]

        result = await self.scripts(client, router, items)

        assert isinstance(result, HpfScriptList)
        assert result.preferred is not None
        assert result.preferred.script_src == "https://x/default"

    async def test_a_list_that_is_not_a_list_is_malformed(self, client, router):
        result = await self.scripts(client, router, {"items": [script()]})

        assert isinstance(result, Approved)  # a lookup: any object is read, and holds no list
        assert not isinstance(result, HpfScriptList)

    async def test_a_sign_in_without_a_token_lists_nothing(self, client, router):
        router.post(f"{BACKOFFICE}/backoffice/users/sign-in").respond(json={"accessToken": 5})

        result = await client.backoffice_hpf_scripts()

        assert isinstance(result, Approved)
        assert not isinstance(result, HpfScriptList)


class TestResultsBuiltFromABody:
    """Until callers build results from typed fields, a result built from a body alone reads
    its typed fields from it; typed fields given explicitly win."""

    async def test_typed_fields_are_read_from_the_body(self):
        result = Approved(
            operation="sale",
            http_status=200,
            body={"transactionID": "18747", "cardNumber": "401200******5439", "cardType": 4},
        )

        assert (result.transaction_id, result.card_number, result.card_type) == (
            18747,
            "401200******5439",
            None,
        )

    async def test_explicit_typed_fields_win(self):
        result = Approved(operation="sale", transaction_id=5, body={"transactionID": 7})

        assert result.transaction_id == 5

    async def test_a_lookup_built_from_a_body_has_its_record(self):
        body = build_transaction_record(transactionType="REFUND")

        result = Approved(operation="get_order", http_status=200, body=body)

        assert result.record is not None
        assert result.record.kind == "REFUND"
