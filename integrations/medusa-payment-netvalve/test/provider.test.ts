import assert from "node:assert/strict"
import { after, before, beforeEach, describe, it } from "node:test"

import { BigNumber, MedusaError } from "@medusajs/framework/utils"

import { GatewayClient } from "../src/client"
import netvalveModule, { NetvalveProviderService } from "../src/index"
import {
  API_KEY,
  closedPort,
  PAYMENT_ID,
  payment,
  provider,
  SESSION_ID,
  serviceError,
  StubService,
  WEBHOOK_SECRET,
} from "./stub"

const stub = new StubService()
before(async () => {
  await stub.start()
})
after(async () => {
  await stub.stop()
})
beforeEach(() => stub.reset())

function only<T>(items: T[]): T {
  assert.equal(items.length, 1, `expected one request, got ${items.length}`)
  return items[0] as T
}

function medusaError(type: string, ...fragments: string[]) {
  return (error: unknown): boolean => {
    assert.ok(MedusaError.isMedusaError(error), `not a MedusaError: ${String(error)}`)
    assert.equal(error.type, type, error.message)
    for (const fragment of fragments) {
      assert.ok(error.message.includes(fragment), `${fragment} not in: ${error.message}`)
    }
    return true
  }
}

const HPF_SESSION = {
  id: "5d1f7a4e-2f9b-4f0e-9a53-0f8c2b1d9e77",
  payment_session_id: SESSION_ID,
  source: "api",
  script_src: "https://hpf.netvalve.test/sdk.js",
  integrity: "sha384-abc",
  payment_token: "23ee9bf0-0270-4752-8ced-4a7c7a9b1f3e",
  redirect_url: null,
  amount: "25.00",
  currency_code: "EUR",
  expires_at: "2026-01-01T00:15:00Z",
  reused: false,
}
const SESSION_DATA = { session_id: SESSION_ID, payment_token: HPF_SESSION.payment_token }
const PAID_DATA = { ...SESSION_DATA, payment_id: PAYMENT_ID }

describe("module export", () => {
  it("is a payment ModuleProvider whose service is identified as netvalve", () => {
    assert.equal(netvalveModule.module, "payment")
    assert.deepEqual(netvalveModule.services, [NetvalveProviderService])
    assert.equal(NetvalveProviderService.identifier, "netvalve")
    assert.equal(provider(stub.url).getIdentifier(), "netvalve")
  })
})

describe("initiatePayment", () => {
  it("opens the hosted fields for the session and returns what the storefront needs", async () => {
    stub.on("POST /api/v1/netvalve/hpf/session", { status: 200, body: HPF_SESSION })
    const result = await provider(`${stub.url}/`).initiatePayment({
      amount: 25,
      currency_code: "eur",
      data: { session_id: SESSION_ID, shopper: "data" },
      context: { idempotency_key: SESSION_ID },
    })
    const request = only(stub.requests)
    assert.equal(request.method, "POST")
    assert.equal(request.path, "/api/v1/netvalve/hpf/session")
    assert.equal(request.headers.authorization, `Bearer ${API_KEY}`)
    assert.equal(request.headers["content-type"], "application/json")
    assert.equal(request.headers["idempotency-key"], SESSION_ID)
    assert.deepEqual(request.body, { payment_session_id: SESSION_ID })
    assert.equal(result.id, SESSION_ID)
    assert.equal(result.status, undefined)
    assert.deepEqual(result.data, {
      session_id: SESSION_ID,
      shopper: "data",
      hpf_session_id: HPF_SESSION.id,
      source: "api",
      payment_token: HPF_SESSION.payment_token,
      script_src: HPF_SESSION.script_src,
      integrity: HPF_SESSION.integrity,
      redirect_url: null,
      expires_at: HPF_SESSION.expires_at,
      amount: "25.00",
      currency_code: "EUR",
    })
  })

  it("throws the service's refusal with its words and request id", async () => {
    stub.on("POST /api/v1/netvalve/hpf/session", {
      status: 409,
      body: serviceError("PaymentSessionNotPayable", "The cart is completed."),
    })
    await assert.rejects(
      provider(stub.url).initiatePayment({
        amount: 25,
        currency_code: "eur",
        data: { session_id: SESSION_ID },
      }),
      medusaError(
        MedusaError.Types.NOT_ALLOWED,
        "PaymentSessionNotPayable",
        "The cart is completed.",
        "req-PaymentSessionNotPayable"
      )
    )
  })

  it("throws without asking when the data has no session_id", async () => {
    await assert.rejects(
      provider(stub.url).initiatePayment({ amount: 25, currency_code: "eur", data: {} }),
      medusaError(MedusaError.Types.INVALID_DATA, "session_id")
    )
    assert.equal(stub.requests.length, 0)
  })

  it("throws on a 502 with the service's error type and message", async () => {
    stub.on("POST /api/v1/netvalve/hpf/session", {
      status: 502,
      body: serviceError("HpfUnavailable", "No hosted-payment-fields source is available."),
    })
    await assert.rejects(
      provider(stub.url).initiatePayment({
        amount: 25,
        currency_code: "eur",
        data: { session_id: SESSION_ID },
      }),
      medusaError(
        MedusaError.Types.UNEXPECTED_STATE,
        `NetValve gateway service at ${stub.url} failed`,
        "HTTP 502 HpfUnavailable",
        "No hosted-payment-fields source is available.",
        "req-HpfUnavailable"
      )
    )
  })
})

describe("authorizePayment", () => {
  const authorize = (data: Record<string, unknown> = SESSION_DATA) =>
    provider(stub.url).authorizePayment({ data, context: { idempotency_key: SESSION_ID } })

  it("pays with the session's token and maps an approved sale to captured", async () => {
    stub.on("POST /api/v1/netvalve/payment", { status: 200, body: payment() })
    const result = await authorize()
    const request = only(stub.requests)
    assert.equal(request.path, "/api/v1/netvalve/payment")
    assert.equal(request.headers.authorization, `Bearer ${API_KEY}`)
    assert.equal(request.headers["idempotency-key"], SESSION_ID)
    assert.deepEqual(request.body, {
      payment_session_id: SESSION_ID,
      payment_token: SESSION_DATA.payment_token,
    })
    assert.equal(result.status, "captured")
    assert.equal(result.data?.payment_id, PAYMENT_ID)
    assert.equal(result.data?.captured_amount, "25.00")
    assert.equal(result.data?.amount, "25.00")
    assert.equal(result.data?.session_id, SESSION_ID)
  })

  it("maps an approved authorization to authorized", async () => {
    stub.on("POST /api/v1/netvalve/payment", {
      status: 200,
      body: payment({ status: "authorized", state: "authorized", captured_amount: "0.00" }),
    })
    const result = await authorize()
    assert.equal(result.status, "authorized")
    assert.equal(result.data?.authorized_amount, "25.00")
  })

  it("maps a 202 (pending or unknown at NetValve) to pending", async () => {
    stub.on("POST /api/v1/netvalve/payment", {
      status: 202,
      body: payment({
        status: "pending",
        state: "pending",
        authorized_amount: "0.00",
        captured_amount: "0.00",
        in_progress: "sale",
      }),
    })
    const result = await authorize()
    assert.equal(result.status, "pending")
    assert.equal(result.data?.netvalve_status, "pending")
    assert.equal(result.data?.payment_id, PAYMENT_ID)
  })

  it("maps a decline to error and keeps the decline in the data, without throwing", async () => {
    stub.on("POST /api/v1/netvalve/payment", {
      status: 402,
      body: serviceError("PaymentDeclined", "Insufficient funds", {
        payment: payment({
          status: "error",
          state: "requires_payment",
          authorized_amount: "0.00",
          captured_amount: "0.00",
          response_code: "GTW_2005",
          response_message: "Insufficient funds",
        }),
        response_code: "GTW_2005",
        response_message: "Insufficient funds",
        decline_type: "soft",
      }),
    })
    const result = await authorize()
    assert.equal(result.status, "error")
    assert.deepEqual(result.data?.decline, {
      code: "GTW_2005",
      message: "Insufficient funds",
      decline_type: "soft",
    })
    assert.equal(result.data?.netvalve_status, "error")
    assert.equal(result.data?.payment_id, PAYMENT_ID)
  })

  it("maps AlreadyPaid to the payment it carries", async () => {
    stub.on("POST /api/v1/netvalve/payment", {
      status: 409,
      body: serviceError("AlreadyPaid", "Payment session is already paid (captured).", {
        payment: payment(),
      }),
    })
    const result = await authorize()
    assert.equal(result.status, "captured")
    assert.equal(result.data?.payment_id, PAYMENT_ID)
  })

  it("reads the ledger when the session's payment is already under way", async () => {
    stub.on("POST /api/v1/netvalve/payment", {
      status: 409,
      body: serviceError("PaymentInProgress", "Another operation on this payment is in progress."),
    })
    stub.on("GET /api/v1/netvalve/status", {
      status: 202,
      body: payment({ status: "pending", state: "pending", in_progress: "sale" }),
    })
    const result = await authorize()
    assert.equal(result.status, "pending")
    const status = stub.requests[1]
    assert.equal(status?.query.get("payment_session_id"), SESSION_ID)
    assert.equal(status?.headers.authorization, `Bearer ${API_KEY}`)
  })

  it("throws other conflicts with the service's message", async () => {
    stub.on("POST /api/v1/netvalve/payment", {
      status: 409,
      body: serviceError("PaymentSessionNotPayable", "The payment collection is paid."),
    })
    await assert.rejects(
      authorize(),
      medusaError(MedusaError.Types.NOT_ALLOWED, "The payment collection is paid.")
    )
  })

  it("throws a 422 with each invalid field", async () => {
    stub.on("POST /api/v1/netvalve/payment", {
      status: 422,
      body: {
        error: "UnprocessableEntity",
        detail: [{ loc: ["body", "payment_token"], msg: "too short", type: "string_too_short" }],
        request_id: "r422",
      },
    })
    await assert.rejects(
      authorize(),
      medusaError(MedusaError.Types.INVALID_DATA, "body.payment_token: too short", "r422")
    )
  })

  it("throws a 503 naming the gateway service, its error, message and request id", async () => {
    stub.on("POST /api/v1/netvalve/payment", {
      status: 503,
      body: serviceError("GatewayUnavailable", "NetValve could not be reached; retry shortly."),
      headers: { "Retry-After": "5" },
    })
    await assert.rejects(
      authorize(),
      medusaError(
        MedusaError.Types.UNEXPECTED_STATE,
        `NetValve gateway service at ${stub.url} failed POST /api/v1/netvalve/payment`,
        "GatewayUnavailable",
        "NetValve could not be reached; retry shortly.",
        "req-GatewayUnavailable"
      )
    )
  })

  it("throws a non-JSON 5xx (a proxy's page) with its status and request id", async () => {
    stub.on("POST /api/v1/netvalve/payment", { status: 502, raw: "<html>Bad Gateway</html>" })
    await assert.rejects(
      authorize(),
      medusaError(MedusaError.Types.UNEXPECTED_STATE, "HTTP 502", "hdr-request-id")
    )
  })

  it("throws when the gateway service is unreachable", async () => {
    const url = await closedPort()
    await assert.rejects(
      provider(url).authorizePayment({ data: SESSION_DATA }),
      medusaError(
        MedusaError.Types.UNEXPECTED_STATE,
        `NetValve gateway service at ${url} is unreachable`
      )
    )
  })

  it("uses the session id as Idempotency-Key when Medusa gives none", async () => {
    stub.on("POST /api/v1/netvalve/payment", { status: 200, body: payment() })
    await provider(stub.url).authorizePayment({ data: SESSION_DATA })
    assert.equal(only(stub.requests).headers["idempotency-key"], SESSION_ID)
  })

  it("throws without asking when the session has no payment token", async () => {
    await assert.rejects(
      authorize({ session_id: SESSION_ID }),
      medusaError(MedusaError.Types.INVALID_DATA, "payment_token")
    )
    assert.equal(stub.requests.length, 0)
  })
})

describe("capturePayment", () => {
  const capture = () =>
    provider(stub.url).capturePayment({ data: PAID_DATA, context: { idempotency_key: "capt_01" } })

  it("captures the payment and keeps the ledger's amounts", async () => {
    stub.on("POST /api/v1/netvalve/capture", { status: 200, body: payment() })
    const result = await capture()
    const request = only(stub.requests)
    assert.equal(request.headers["idempotency-key"], "capt_01")
    assert.equal(request.headers.authorization, `Bearer ${API_KEY}`)
    assert.deepEqual(request.body, { payment_id: PAYMENT_ID })
    assert.equal(result.data?.captured_amount, "25.00")
    assert.equal(result.data?.netvalve_state, "captured")
  })

  it("throws while NetValve has not settled the capture", async () => {
    stub.on("POST /api/v1/netvalve/capture", {
      status: 202,
      body: payment({ status: "authorized", state: "authorized", in_progress: "capture" }),
    })
    await assert.rejects(capture(), medusaError(MedusaError.Types.NOT_ALLOWED, "not settled"))
  })

  it("answers a capture of an already captured payment from the ledger", async () => {
    stub.on("POST /api/v1/netvalve/capture", {
      status: 422,
      body: serviceError("InvalidAmount", "Nothing is left for this operation."),
    })
    stub.on("GET /api/v1/netvalve/status", { status: 200, body: payment() })
    const result = await capture()
    assert.equal(result.data?.captured_amount, "25.00")
    assert.equal(stub.requests[1]?.query.get("payment_id"), PAYMENT_ID)
  })

  it("throws a refusal the ledger does not explain", async () => {
    stub.on("POST /api/v1/netvalve/capture", {
      status: 409,
      body: serviceError("PaymentStateConflict", "The payment is canceled."),
    })
    stub.on("GET /api/v1/netvalve/status", {
      status: 200,
      body: payment({ status: "canceled", state: "canceled" }),
    })
    await assert.rejects(
      capture(),
      medusaError(MedusaError.Types.NOT_ALLOWED, "The payment is canceled.")
    )
  })

  it("throws a declined capture with NetValve's code", async () => {
    stub.on("POST /api/v1/netvalve/capture", {
      status: 402,
      body: serviceError("PaymentDeclined", "Expired authorization", {
        payment: payment({ status: "authorized", state: "authorized" }),
        response_code: "GTW_2101",
        response_message: "Expired authorization",
        decline_type: "hard",
      }),
    })
    await assert.rejects(
      capture(),
      medusaError(MedusaError.Types.NOT_ALLOWED, "GTW_2101", "Expired authorization")
    )
  })

  it("throws when there is no payment to capture", async () => {
    await assert.rejects(
      provider(stub.url).capturePayment({ data: SESSION_DATA }),
      medusaError(MedusaError.Types.INVALID_DATA, "payment_id")
    )
    assert.equal(stub.requests.length, 0)
  })
})

describe("refundPayment", () => {
  for (const [name, amount, expected] of [
    ["a number", 5, "5"],
    ["a fractional number", 12.34, "12.34"],
    ["a string", "7.50", "7.5"],
    ["a raw object", { value: "5", precision: 20 }, "5"],
    ["a raw object with many decimals", { value: "98.9009", precision: 20 }, "98.9009"],
    ["a BigNumber", "bignumber:0.3", "0.3"],
    ["a BigNumber from another copy of Medusa", "foreign:3.3", "3.3"],
  ] as const) {
    it(`sends ${name} as an exact major-unit string`, async () => {
      let input: unknown = amount
      if (typeof amount === "string" && amount.startsWith("bignumber:")) {
        input = new BigNumber(amount.slice("bignumber:".length))
      } else if (typeof amount === "string" && amount.startsWith("foreign:")) {
        const value = amount.slice("foreign:".length)
        input = { numeric: Number(value), raw: { value, precision: 20 }, toJSON: () => 3.3 }
      }
      stub.on("POST /api/v1/netvalve/refund", {
        status: 200,
        body: payment({ state: "partially_refunded", refunded_amount: expected }),
      })
      const result = await provider(stub.url).refundPayment({
        data: PAID_DATA,
        amount: input as number,
        context: { idempotency_key: "ref_01" },
      })
      const request = only(stub.requests)
      assert.deepEqual(request.body, { payment_id: PAYMENT_ID, amount: expected })
      assert.equal(request.headers["idempotency-key"], "ref_01")
      assert.equal(result.data?.refunded_amount, expected)
    })
  }

  for (const amount of [0, -5, "abc", { value: "0", precision: 20 }, Number.NaN]) {
    it(`refuses ${JSON.stringify(amount)} without asking`, async () => {
      await assert.rejects(
        provider(stub.url).refundPayment({ data: PAID_DATA, amount: amount as number }),
        medusaError(MedusaError.Types.INVALID_DATA, "positive")
      )
      assert.equal(stub.requests.length, 0)
    })
  }

  it("records a refund the service is still settling (202)", async () => {
    stub.on("POST /api/v1/netvalve/refund", {
      status: 202,
      body: payment({ in_progress: "refund" }),
    })
    const result = await provider(stub.url).refundPayment({ data: PAID_DATA, amount: 5 })
    assert.equal(result.data?.in_progress, "refund")
  })

  it("throws a refund beyond what was captured", async () => {
    stub.on("POST /api/v1/netvalve/refund", {
      status: 422,
      body: serviceError("RefundExceedsCaptured", "At most 20.00 EUR can be refunded."),
    })
    await assert.rejects(
      provider(stub.url).refundPayment({ data: PAID_DATA, amount: 30 }),
      medusaError(MedusaError.Types.INVALID_DATA, "RefundExceedsCaptured", "At most 20.00 EUR")
    )
  })
})

describe("cancelPayment", () => {
  it("returns the data unchanged when no payment was made", async () => {
    const result = await provider(stub.url).cancelPayment({ data: SESSION_DATA })
    assert.deepEqual(result.data, SESSION_DATA)
    assert.equal(stub.requests.length, 0)
  })

  it("cancels the payment", async () => {
    stub.on("POST /api/v1/netvalve/cancel", {
      status: 200,
      body: payment({ status: "canceled", state: "canceled" }),
    })
    const result = await provider(stub.url).cancelPayment({
      data: PAID_DATA,
      context: { idempotency_key: "pay_01" },
    })
    const request = only(stub.requests)
    assert.deepEqual(request.body, { payment_id: PAYMENT_ID })
    assert.equal(request.headers["idempotency-key"], "pay_01")
    assert.equal(result.data?.netvalve_state, "canceled")
  })

  it("throws a cancel the payment's state refuses", async () => {
    stub.on("POST /api/v1/netvalve/cancel", {
      status: 409,
      body: serviceError("PaymentStateConflict", "The payment is captured."),
    })
    await assert.rejects(
      provider(stub.url).cancelPayment({ data: PAID_DATA }),
      medusaError(MedusaError.Types.NOT_ALLOWED, "The payment is captured.")
    )
  })
})

describe("getPaymentStatus and retrievePayment", () => {
  it("maps the ledger's status", async () => {
    stub.on("GET /api/v1/netvalve/status", {
      status: 200,
      body: payment({ status: "authorized", state: "authorized" }),
    })
    const result = await provider(stub.url).getPaymentStatus({ data: SESSION_DATA })
    assert.equal(result.status, "authorized")
    const request = only(stub.requests)
    assert.equal(request.query.get("payment_session_id"), SESSION_ID)
    assert.equal(request.headers.authorization, `Bearer ${API_KEY}`)
    assert.equal(request.headers["idempotency-key"], undefined)
  })

  it("is pending while nothing is charged (404)", async () => {
    const result = await provider(stub.url).getPaymentStatus({ data: SESSION_DATA })
    assert.equal(result.status, "pending")
    assert.deepEqual(result.data, SESSION_DATA)
  })

  it("retrieves the payment", async () => {
    stub.on("GET /api/v1/netvalve/status", { status: 200, body: payment() })
    const result = await provider(stub.url).retrievePayment({ data: PAID_DATA })
    assert.equal(result.data?.payment_id, PAYMENT_ID)
    assert.equal(result.data?.captured_amount, "25.00")
  })

  it("throws when there is no payment to retrieve", async () => {
    await assert.rejects(
      provider(stub.url).retrievePayment({ data: SESSION_DATA }),
      medusaError(MedusaError.Types.NOT_FOUND, "HTTP 404")
    )
  })
})

describe("updatePayment and deletePayment", () => {
  it("re-opens the hosted fields before a payment", async () => {
    stub.on("POST /api/v1/netvalve/hpf/session", {
      status: 200,
      body: { ...HPF_SESSION, payment_token: "fresh-token-0001", amount: "30.00" },
    })
    const result = await provider(stub.url).updatePayment({
      amount: 30,
      currency_code: "eur",
      data: SESSION_DATA,
    })
    assert.deepEqual(only(stub.requests).body, { payment_session_id: SESSION_ID })
    assert.equal(result.data?.payment_token, "fresh-token-0001")
    assert.equal(result.data?.amount, "30.00")
  })

  it("keeps the data as it is once a payment exists", async () => {
    const result = await provider(stub.url).updatePayment({
      amount: 30,
      currency_code: "eur",
      data: PAID_DATA,
    })
    assert.deepEqual(result.data, PAID_DATA)
    assert.equal(stub.requests.length, 0)
  })

  it("deletes nothing at NetValve", async () => {
    const result = await provider(stub.url).deletePayment({ data: SESSION_DATA })
    assert.deepEqual(result.data, SESSION_DATA)
    assert.equal(stub.requests.length, 0)
  })
})

describe("GatewayClient", () => {
  it("throws when the service does not answer in time", async () => {
    stub.on("GET /api/v1/netvalve/status", () => "hang")
    const client = new GatewayClient({
      gatewayUrl: stub.url,
      apiKey: API_KEY,
      webhookSecret: WEBHOOK_SECRET,
      timeoutMs: 200,
    })
    await assert.rejects(
      client.send({ method: "GET", path: "/status", query: { payment_id: PAYMENT_ID } }),
      medusaError(
        MedusaError.Types.UNEXPECTED_STATE,
        `NetValve gateway service at ${stub.url} did not answer GET /api/v1/netvalve/status`,
        "200 ms"
      )
    )
  })

  it("never puts the API key in an error", async () => {
    stub.on("GET /api/v1/netvalve/status", {
      status: 401,
      body: serviceError("Unauthorized", "Invalid API key."),
    })
    await assert.rejects(
      provider(stub.url).retrievePayment({ data: PAID_DATA }),
      (error: unknown) => {
        assert.ok(error instanceof Error)
        assert.equal((error as MedusaError).type, MedusaError.Types.UNEXPECTED_STATE)
        assert.ok(error.message.includes("Invalid API key."))
        assert.ok(!error.message.includes(API_KEY))
        return true
      }
    )
  })
})
