// Attacks on the provider (issue 13): a service answer that lies must never reach Medusa as a
// payment, and a notification is only ever mapped from the session it names.
import assert from "node:assert/strict"
import { after, before, beforeEach, describe, it } from "node:test"

import { MedusaError } from "@medusajs/framework/utils"
import { Webhook } from "standardwebhooks"

import {
  API_KEY,
  PAYMENT_ID,
  payment,
  provider,
  SESSION_ID,
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

const OTHER_SESSION = "payses_01JOTHERSESSION000000000000"
const OTHER_PAYMENT = "0b9f4c1e-7a2d-4e3b-9c8d-1f2e3d4c5b6a"
const TOKEN = "23ee9bf0-0270-4752-8ced-4a7c7a9b1f3e"
const SESSION_DATA = { session_id: SESSION_ID, payment_token: TOKEN }
const PAID_DATA = { ...SESSION_DATA, payment_id: PAYMENT_ID }

function unexpected(...fragments: string[]) {
  return (error: unknown): boolean => {
    assert.ok(MedusaError.isMedusaError(error), `not a MedusaError: ${String(error)}`)
    assert.equal(error.type, MedusaError.Types.UNEXPECTED_STATE, error.message)
    for (const fragment of fragments) {
      assert.ok(error.message.includes(fragment), `${fragment} not in: ${error.message}`)
    }
    assert.ok(!error.message.includes(API_KEY), error.message)
    assert.ok(!error.message.includes(WEBHOOK_SECRET.slice(6, 20)), error.message)
    return true
  }
}

function authorize() {
  return provider(stub.url).authorizePayment({
    data: SESSION_DATA,
    context: { idempotency_key: SESSION_ID },
  })
}

function notified(): {
  rawData: Buffer
  headers: Record<string, string>
  data: Record<string, unknown>
} {
  const body = JSON.stringify({ type: "payment.captured", data: { session_id: SESSION_ID } })
  const at = new Date()
  const id = "msg_0123456789abcdef0123456789abcdef"
  return {
    data: JSON.parse(body) as Record<string, unknown>,
    rawData: Buffer.from(body),
    headers: {
      "webhook-id": id,
      "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
      "webhook-signature": new Webhook(WEBHOOK_SECRET).sign(id, at, body),
    },
  }
}

describe("a service answer for another session or payment", () => {
  it("authorizePayment does not take a 200 for another session as this one's", async () => {
    stub.on("POST /api/v1/netvalve/payment", {
      status: 200,
      body: payment({ id: OTHER_PAYMENT, payment_session_id: OTHER_SESSION }),
    })
    await assert.rejects(authorize(), unexpected("POST /api/v1/netvalve/payment", OTHER_SESSION))
  })

  it("authorizePayment does not take AlreadyPaid carrying another session's payment", async () => {
    stub.on("POST /api/v1/netvalve/payment", {
      status: 409,
      body: {
        error: "AlreadyPaid",
        detail: "Payment session is already paid (captured).",
        payment: payment({ payment_session_id: OTHER_SESSION }),
      },
    })
    await assert.rejects(authorize(), unexpected(OTHER_SESSION))
  })

  it("authorizePayment does not take a pending 202 for another session", async () => {
    stub.on("POST /api/v1/netvalve/payment", {
      status: 202,
      body: payment({ payment_session_id: OTHER_SESSION, status: "pending", state: "pending" }),
    })
    await assert.rejects(authorize(), unexpected(OTHER_SESSION))
  })

  it("capturePayment does not record another payment's capture", async () => {
    stub.on("POST /api/v1/netvalve/capture", { status: 200, body: payment({ id: OTHER_PAYMENT }) })
    await assert.rejects(
      provider(stub.url).capturePayment({
        data: PAID_DATA,
        context: { idempotency_key: "capt_1" },
      }),
      unexpected(OTHER_PAYMENT)
    )
  })

  it("refundPayment does not record another payment's refund", async () => {
    stub.on("POST /api/v1/netvalve/refund", { status: 200, body: payment({ id: OTHER_PAYMENT }) })
    await assert.rejects(
      provider(stub.url).refundPayment({
        data: PAID_DATA,
        amount: 5,
        context: { idempotency_key: "ref_1" },
      }),
      unexpected(OTHER_PAYMENT)
    )
  })

  it("getPaymentStatus does not report another session's payment", async () => {
    stub.on("GET /api/v1/netvalve/status", {
      status: 200,
      body: payment({ payment_session_id: OTHER_SESSION }),
    })
    await assert.rejects(
      provider(stub.url).getPaymentStatus({ data: SESSION_DATA }),
      unexpected(OTHER_SESSION)
    )
  })
})

describe("a service answer with amounts that are not amounts", () => {
  for (const [field, value] of [
    ["captured_amount", ""],
    ["captured_amount", "abc"],
    ["captured_amount", undefined],
    ["authorized_amount", null],
    ["amount", "-25.00"],
    ["captured_amount", "Infinity"],
  ] as const) {
    it(`a notification is not mapped from ${field} ${JSON.stringify(value)}`, async () => {
      stub.on("GET /api/v1/netvalve/status", { status: 200, body: payment({ [field]: value }) })
      await assert.rejects(
        provider(stub.url).getWebhookActionAndData(notified()),
        unexpected("GET /api/v1/netvalve/status", "no payment")
      )
    })
  }

  it("authorizePayment does not complete a cart on a 200 without amounts", async () => {
    const { captured_amount: _, ...partial } = payment()
    stub.on("POST /api/v1/netvalve/payment", { status: 200, body: partial })
    await assert.rejects(authorize(), unexpected("no payment"))
  })
})
