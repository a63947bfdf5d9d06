"""What the client puts on the wire, and how it reads every kind of answer (respx)."""

import base64
import json
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal

import httpx
import pytest
import pytest_asyncio
import respx

from app.clients.netvalve import (
    Approved,
    AuthenticationFailed,
    Customer,
    Declined,
    HppOrderRequest,
    NetvalveClient,
    NetvalveConfigurationError,
    PaymentRequest,
    Unavailable,
    UnknownOutcome,
    is_not_found,
    read_record,
)
from app.clients.transport import create_http_client
from tests.fixtures.gateway import client_settings
from tests.fixtures.netvalve import (
    API,
    HPP,
    build_hpf_session,
    build_transaction_record,
    build_transaction_response,
)
from tests.fixtures.settings import TEST_API_KEY, TEST_BASIC_AUTH_PASSWORD

pytestmark = pytest.mark.asyncio

USD_MID = "0b5e3a54-52a4-4e0a-9d0c-3f3b7c0d9e11"
SITE = "7d2f1c3a-1111-4222-8333-944455556666"
BASIC = "Basic " + base64.b64encode(f"merchant:{TEST_BASIC_AUTH_PASSWORD}".encode()).decode()


@pytest_asyncio.fixture
async def client() -> AsyncIterator[NetvalveClient]:
    settings = client_settings(netvalve_mid_id_usd=USD_MID, netvalve_site_id=SITE)
    async with create_http_client(settings) as http:
        yield NetvalveClient(http, settings)


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_mocked=True, assert_all_called=True) as mocked:
        yield mocked


def payment(**overrides: object) -> PaymentRequest:
    values: dict[str, object] = {
        "amount": Decimal("44.00"),
        "currency": "eur",
        "client_order_id": "pay_01JABC",
        "payment_token": "23ee9bf0-0270-4752-8ced-000000000004",
        "customer": Customer(
            email="ada@example.com",
            first_name="Ada",
            last_name="Lovelace",
            address="12 St James's Square",
            city="London",
            zip_code="SW1Y 4JH",
            country_code="gb",
            ip="203.0.113.9",
        ),
    }
    values.update(overrides)
    return PaymentRequest(**values)  # type: ignore[arg-type]


def sent(route: respx.Route) -> httpx.Request:
    assert route.call_count == 1
    return route.calls.last.request


class TestWhatIsSent:
    async def test_sale_headers_and_exact_body(self, client, router):
        route = router.post(f"{API}/sale").respond(json=build_transaction_response())

        await client.sale(payment())

        request = sent(route)
        assert request.headers["netvalve-client-id"] == "test-client"
        assert request.headers["netvalve-api-key"] == TEST_API_KEY
        assert request.headers["authorization"] == BASIC
        assert request.headers["content-type"] == "application/json"
        assert request.content == (
            b'{"amount":44.00,"currency":"EUR","paymentType":"CARD",'
            b'"paymentToken":"23ee9bf0-0270-4752-8ced-000000000004","clientOrderId":"pay_01JABC",'
            b'"midId":2,"customerEmail":"ada@example.com","customerFirstName":"Ada",'
            b'"customerLastName":"Lovelace","customerAddress":"12 St James\'s Square",'
            b'"customerCity":"London","customerZipCode":"SW1Y 4JH","customerCountryCode":"GB",'
            b'"customerIp":"203.0.113.9"}'
        )

    async def test_authorize_goes_to_its_own_path(self, client, router):
        route = router.post(f"{API}/authorize").respond(json=build_transaction_response())

        await client.authorize(payment(customer=Customer()))

        assert json.loads(sent(route).content)["paymentToken"]

    @pytest.mark.parametrize(
        ("amount", "wire"),
        [("98.9009", b"98.90"), ("2.675", b"2.68"), ("7", b"7.00"), ("0.005", b"0.01")],
    )
    async def test_amounts_have_two_decimals_rounded_half_up(self, client, router, amount, wire):
        route = router.post(f"{API}/sale").respond(json=build_transaction_response())

        await client.sale(payment(amount=Decimal(amount), customer=Customer()))

        assert sent(route).content.startswith(b'{"amount":' + wire + b",")

    async def test_uuid_mid_is_sent_as_netvalve_mid_id(self, client, router):
        route = router.post(f"{API}/sale").respond(json=build_transaction_response())

        await client.sale(payment(currency="USD"))

        body = json.loads(sent(route).content)
        assert body["netvalveMidId"] == USD_MID
        assert "midId" not in body
        assert "siteId" not in body

    async def test_currency_without_mid_uses_the_site_for_smart_routing(self, client, router):
        route = router.post(f"{API}/sale").respond(json=build_transaction_response())

        await client.sale(payment(currency="PHP"))

        body = json.loads(sent(route).content)
        assert body["siteId"] == SITE
        assert "midId" not in body

    async def test_unroutable_currency_sends_nothing(self, router):
        settings = client_settings()
        async with create_http_client(settings) as http:
            with pytest.raises(NetvalveConfigurationError, match="NETVALVE_MID_ID_USD"):
                await NetvalveClient(http, settings).sale(payment(currency="USD"))

    async def test_partial_capture_body(self, client, router):
        route = router.post(f"{API}/capture").respond(json=build_transaction_response())

        await client.capture(18747, Decimal("30"), final_capture=True)

        assert sent(route).content == (
            b'{"transactionID":18747,"amount":30.00,"captureOptions":{"finalCapture":true}}'
        )

    async def test_full_capture_body(self, client, router):
        route = router.post(f"{API}/capture").respond(json=build_transaction_response())

        await client.capture(18747, Decimal("44.00"))

        assert sent(route).content == b'{"transactionID":18747,"amount":44.00}'

    async def test_cancel_body(self, client, router):
        route = router.post(f"{API}/cancel").respond(json=build_transaction_response())

        await client.cancel(18747)

        assert sent(route).content == b'{"transactionID":18747}'

    async def test_refund_bodies_full_and_partial(self, client, router):
        route = router.post(f"{API}/refund").respond(json=build_transaction_response())

        await client.refund(18747)
        await client.refund(18747, Decimal("10.5"))

        bodies = [call.request.content for call in route.calls]
        assert bodies == [b'{"transactionID":18747}', b'{"transactionID":18747,"amount":10.50}']

    async def test_lookups_use_documented_query_names(self, client, router):
        inquiry = router.get(f"{API}/inquiry", params={"transactionId": "18747"}).respond(
            json=build_transaction_response()
        )
        transaction = router.get(f"{API}/transaction", params={"id": "18747"}).respond(
            json=build_transaction_record()
        )
        order = router.get(f"{API}/order", params={"clientOrderId": "pay_01JABC"}).respond(
            json=build_transaction_record()
        )

        await client.inquiry(18747)
        await client.get_transaction(18747)
        await client.get_order(client_order_id="pay_01JABC")

        for route in (inquiry, transaction, order):
            request = sent(route)
            assert request.method == "GET"
            assert request.headers["netvalve-api-key"] == TEST_API_KEY

    async def test_get_order_needs_a_key(self, client):
        with pytest.raises(ValueError, match="client_order_id"):
            await client.get_order()

    async def test_hpf_session_is_a_get_with_auth(self, client, router):
        route = router.get(f"{API}/hpf/initializeSession").respond(json=build_hpf_session())

        await client.initialize_hpf_session()

        request = sent(route)
        assert request.content == b""
        assert request.headers["netvalve-client-id"] == "test-client"

    async def test_hpp_order_goes_to_the_hpp_host(self, client, router):
        route = router.post(f"{HPP}/hpp/order").respond(
            json=build_transaction_response(orderState="CREATED", redirectUrl="https://x/")
        )

        await client.create_hpp_order(
            HppOrderRequest(
                amount=Decimal("44"),
                currency="EUR",
                client_order_id="pay_01JABC",
                success_url="https://shop.example.com/ok",
                cancel_url="https://shop.example.com/cancel",
                failed_url="https://shop.example.com/failed",
                mode="AUTHORIZATION",
                customer=Customer(email="ada@example.com"),
            )
        )

        assert json.loads(sent(route).content) == {
            "amount": 44.0,
            "currency": "EUR",
            "mode": "AUTHORIZATION",
            "clientOrderId": "pay_01JABC",
            "successUrl": "https://shop.example.com/ok",
            "cancelUrl": "https://shop.example.com/cancel",
            "failedUrl": "https://shop.example.com/failed",
            "midId": 2,
            "customerDetails": {"customerEmail": "ada@example.com"},
        }
        assert b'"amount":44.00' in sent(route).content


class TestHowAnswersAreRead:
    @pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
    async def test_5xx_and_429_are_unknown_outcomes(self, client, router, status):
        router.post(f"{API}/sale").respond(status, json=build_transaction_response())

        result = await client.sale(payment())

        assert isinstance(result, UnknownOutcome)
        assert result.reason == f"http_{status}"

    @pytest.mark.parametrize(
        ("error", "reason"),
        [
            (httpx.ConnectError("refused"), "connection_refused"),
            (httpx.ConnectTimeout("slow connect"), "connect_timeout"),
            (httpx.PoolTimeout("pool exhausted"), "pool_timeout"),
        ],
    )
    async def test_never_sent_is_unavailable(self, client, router, error, reason):
        router.post(f"{API}/sale").mock(side_effect=error)

        result = await client.sale(payment())

        assert isinstance(result, Unavailable)
        assert (result.reason, result.retry_safe) == (reason, True)

    @pytest.mark.parametrize(
        ("error", "reason"),
        [
            (httpx.ReadTimeout("slow answer"), "timeout"),
            (httpx.WriteTimeout("slow send"), "timeout"),
            (httpx.ReadError("reset"), "connection_lost"),
            (httpx.RemoteProtocolError("closed"), "connection_lost"),
        ],
    )
    async def test_sent_without_answer_is_unknown(self, client, router, error, reason):
        router.post(f"{API}/sale").mock(side_effect=error)

        result = await client.sale(payment())

        assert isinstance(result, UnknownOutcome)
        assert (result.reason, result.retry_safe) == (reason, False)

    async def test_approval_without_response_code_is_not_trusted(self, client, router):
        router.post(f"{API}/sale").respond(json={"traceID": "x", "transactionID": 1})

        result = await client.sale(payment())

        assert isinstance(result, UnknownOutcome)
        assert result.reason == "no_response_code"

    async def test_json_that_is_not_an_object_is_malformed(self, client, router):
        router.post(f"{API}/sale").respond(json=["unexpected"])

        result = await client.sale(payment())

        assert isinstance(result, UnknownOutcome)
        assert result.reason == "malformed_body"

    async def test_hard_decline(self, client, router):
        router.post(f"{API}/sale").respond(
            json=build_transaction_response(
                responseCode="BNK_3002",
                responseMessage="Lost Card",
                responseCodeType="HARD DECLINE",
            )
        )

        result = await client.sale(payment())

        assert isinstance(result, Declined)
        assert result.hard

    @pytest.mark.parametrize("code", ["GTW_9001", "GTW_9002", "GTW_2082"])
    async def test_auth_codes_in_a_200_are_authentication_failures(self, client, router, code):
        router.post(f"{API}/sale").respond(json=build_transaction_response(responseCode=code))

        result = await client.sale(payment())

        assert isinstance(result, AuthenticationFailed)
        assert result.response_code == code

    async def test_403_without_body_is_an_authentication_failure(self, client, router):
        router.post(f"{API}/sale").respond(403, content=b"Forbidden")

        result = await client.sale(payment())

        assert isinstance(result, AuthenticationFailed)
        assert result.http_status == 403

    async def test_other_4xx_without_body_is_a_refusal(self, client, router):
        router.post(f"{API}/capture").respond(422, content=b"")

        result = await client.capture(1, Decimal("1.00"))

        assert isinstance(result, Declined)
        assert result.response_message == "HTTP 422"

    async def test_a_lookup_reads_the_record_whatever_its_code(self, client, router):
        router.get(f"{API}/transaction").respond(
            json=build_transaction_record(responseCode="BNK_2005", responseCodeType="SOFT DECLINE")
        )

        result = await client.get_transaction(18747)

        assert isinstance(result, Approved)
        assert result.body["responseCode"] == "BNK_2005"

    async def test_elapsed_time_is_measured(self, client, router):
        router.post(f"{API}/sale").respond(json=build_transaction_response())

        result = await client.sale(payment())

        assert result.elapsed_ms > 0


class TestTransactionRecords:
    """`read_record`: NetValve's record of a transaction, the proof webhooks are checked by."""

    async def test_a_root_with_its_children_and_chargebacks(self, client, router):
        body = build_transaction_record(
            transactionType="SALE",
            chargebackData=[{"amount": 10.00}, {"amount": "bad"}],
            transactions=[
                {
                    "transactionId": 18748,
                    "transactionType": "REFUND",
                    "amount": 4.00,
                    "responseCode": "GTW_1000",
                },
                {"transactionType": "REFUND", "amount": 1.00, "responseCode": "GTW_1000"},
            ],
        )
        router.get(f"{API}/transaction").respond(200, json=body)

        record = read_record(await client.get_transaction(18747))

        assert record is not None
        assert (record.transaction_id, record.kind, record.outcome) == (18747, "SALE", "approved")
        assert (record.amount, record.currency, record.client_order_id) == (
            Decimal("44.00"),
            "EUR",
            "pay_01",
        )
        assert record.chargebacks == (Decimal("10.00"),)
        [child] = record.children  # the one without an id is no transaction at all
        assert (child.transaction_id, child.kind, child.parent_id) == (18748, "REFUND", 18747)
        assert (child.currency, child.client_order_id, child.outcome) == (
            "EUR",
            "pay_01",
            "approved",
        )

    @pytest.mark.parametrize(
        ("fields", "outcome"),
        [
            ({"responseCodeType": "SOFT DECLINE", "responseCode": "BNK_2005"}, "declined"),
            ({"responseCodeType": None, "responseCode": "GTW_1002"}, "pending"),
            ({"responseCodeType": None, "responseCode": "GTW_2045"}, "declined"),
            ({"responseCodeType": None, "responseCode": "GTW_1000"}, "approved"),
        ],
    )
    async def test_the_outcome_is_the_transactions_own(self, client, router, fields, outcome):
        router.get(f"{API}/transaction").respond(
            200, json=build_transaction_record(transactionType="SALE", **fields)
        )

        record = read_record(await client.get_transaction(18747))

        assert record is not None
        assert record.outcome == outcome

    @pytest.mark.parametrize(
        "body",
        [
            build_transaction_record(),  # no transactionType
            build_transaction_record(transactionType="SALE", netvalveID="x"),
            build_transaction_record(
                transactionType="SALE", responseCode=None, responseCodeType=None
            ),
        ],
    )
    async def test_a_record_that_cannot_be_read_is_none(self, client, router, body):
        router.get(f"{API}/transaction").respond(200, json=body)

        assert read_record(await client.get_transaction(18747)) is None

    async def test_not_found_is_told_apart_from_no_answer(self, client, router):
        router.get(f"{API}/transaction").mock(
            side_effect=[
                httpx.Response(404, json={"responseCode": "GTW_2103"}),
                httpx.Response(502, text="<html>"),
            ]
        )

        missing = await client.get_transaction(1)
        failed = await client.get_transaction(1)

        assert (is_not_found(missing), read_record(missing)) == (True, None)
        assert (is_not_found(failed), read_record(failed)) == (False, None)
