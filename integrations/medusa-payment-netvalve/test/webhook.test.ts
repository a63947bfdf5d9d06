import assert from "node:assert/strict"
import { randomBytes } from "node:crypto"
import { after, before, beforeEach, describe, it } from "node:test"

import { MedusaError } from "@medusajs/framework/utils"
import { Webhook } from "standardwebhooks"

import type { ServicePayment } from "../src/client"
import { ledgerAction } from "../src/service"
import { API_KEY, payment, provider, SESSION_ID, StubService, WEBHOOK_SECRET } from "./stub"

const stub = new StubService()
before(async () => {
  await stub.start()
})
after(async () => {
  await stub.stop()
})
beforeEach(() => stub.reset())

const MESSAGE_ID = "msg_6f1c0b7e3a2d4c5b8e9f0a1b2c3d4e5f"

function notification(state = "captured", type = "payment.captured"): string {
  return JSON.stringify({
    type,
    timestamp: "2026-01-01T00:00:00Z",
    data: {
      payment_id: "9fc4d4e0-6338-4010-82f7-3808e1a0e109",
      session_id: SESSION_ID,
      cart_id: "cart_01JTESTCART",
      state,
      amount: "25.00",
      currency_code: "eur",
      transaction_id: 18747,
    },
  })
}

/** Headers as Medusa hands them over: lower-cased, every header kept. */
function signed(body: string, { secret = WEBHOOK_SECRET, at = new Date(), id = MESSAGE_ID } = {}) {
  return {
    "content-type": "application/json",
    "user-agent": "netvalve-gateway",
    "webhook-id": id,
    "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
    "webhook-signature": new Webhook(secret).sign(id, at, body),
  }
}

function ledger(overrides: Record<string, unknown>) {
  stub.on("GET /api/v1/netvalve/status", { status: 200, body: payment(overrides) })
}

function rejected(...fragments: string[]) {
  return (error: unknown): boolean => {
    assert.ok(MedusaError.isMedusaError(error), String(error))
    for (const fragment of fragments) {
      assert.ok(error.message.includes(fragment), error.message)
    }
    return true
  }
}

describe("getWebhookActionAndData", () => {
  it("verifies a signed notification, then maps the ledger: captured", async () => {
    ledger({ status: "captured", state: "captured", captured_amount: "25.00" })
    const body = notification()
    const result = await provider(stub.url).getWebhookActionAndData({
      data: JSON.parse(body) as Record<string, unknown>,
      rawData: Buffer.from(body),
      headers: signed(body),
    })
    assert.deepEqual(result, { action: "captured", data: { session_id: SESSION_ID, amount: 25 } })
    const request = stub.requests[0]
    assert.equal(stub.requests.length, 1)
    assert.equal(request?.method, "GET")
    assert.equal(request?.path, "/api/v1/netvalve/status")
    assert.equal(request?.query.get("payment_session_id"), SESSION_ID)
    assert.equal(request?.headers.authorization, `Bearer ${API_KEY}`)
  })

  it("takes the raw body as a string or as a Buffer serialized by the event bus", async () => {
    ledger({ status: "authorized", state: "authorized", authorized_amount: "98.9" })
    const body = notification("authorized", "payment.authorized")
    for (const rawData of [body, Buffer.from(body).toJSON()]) {
      const result = await provider(stub.url).getWebhookActionAndData({
        data: {},
        rawData: rawData as string,
        headers: signed(body),
      })
      assert.deepEqual(result, {
        action: "authorized",
        data: { session_id: SESSION_ID, amount: 98.9 },
      })
    }
  })

  it("trusts the ledger, not a validly signed body: body captured, ledger pending", async () => {
    ledger({
      status: "pending",
      state: "pending",
      authorized_amount: "0.00",
      captured_amount: "0.00",
      in_progress: "sale",
    })
    const body = notification("captured")
    const result = await provider(stub.url).getWebhookActionAndData({
      data: JSON.parse(body) as Record<string, unknown>,
      rawData: Buffer.from(body),
      headers: signed(body),
    })
    assert.equal(result.action, "pending")
    assert.deepEqual(result.data, { session_id: SESSION_ID, amount: 25 })
  })

  it("rejects a forged signature without asking the service", async () => {
    ledger({})
    const body = notification()
    const forged = `whsec_${randomBytes(32).toString("base64")}`
    await assert.rejects(
      provider(stub.url).getWebhookActionAndData({
        data: {},
        rawData: Buffer.from(body),
        headers: signed(body, { secret: forged }),
      }),
      rejected("verification", "No matching signature")
    )
    assert.equal(stub.requests.length, 0)
  })

  it("rejects a signed notification whose body was changed", async () => {
    ledger({})
    const body = notification()
    const headers = signed(body)
    await assert.rejects(
      provider(stub.url).getWebhookActionAndData({
        data: {},
        rawData: Buffer.from(body.replace("25.00", "2500.00")),
        headers,
      }),
      rejected("No matching signature")
    )
    assert.equal(stub.requests.length, 0)
  })

  it("rejects an unsigned notification", async () => {
    ledger({})
    const body = notification()
    await assert.rejects(
      provider(stub.url).getWebhookActionAndData({
        data: {},
        rawData: Buffer.from(body),
        headers: { "content-type": "application/json" },
      }),
      rejected("Missing required headers")
    )
    assert.equal(stub.requests.length, 0)
  })

  it("rejects a stale notification (signed more than 5 minutes ago)", async () => {
    ledger({})
    const body = notification()
    await assert.rejects(
      provider(stub.url).getWebhookActionAndData({
        data: {},
        rawData: Buffer.from(body),
        headers: signed(body, { at: new Date(Date.now() - 6 * 60 * 1000) }),
      }),
      rejected("too old")
    )
    assert.equal(stub.requests.length, 0)
  })

  it("rejects a notification without a raw body", async () => {
    const body = notification()
    await assert.rejects(
      provider(stub.url).getWebhookActionAndData({
        data: JSON.parse(body) as Record<string, unknown>,
        rawData: undefined as unknown as string,
        headers: signed(body),
      }),
      rejected("raw body")
    )
  })

  it("ignores a verified notification without a session id", async () => {
    const body = JSON.stringify({ type: "payment.captured", data: {} })
    const result = await provider(stub.url).getWebhookActionAndData({
      data: {},
      rawData: body,
      headers: signed(body),
    })
    assert.deepEqual(result, { action: "not_supported" })
    assert.equal(stub.requests.length, 0)
  })

  it("ignores a notification about a session the ledger does not know", async () => {
    const body = notification()
    const result = await provider(stub.url).getWebhookActionAndData({
      data: {},
      rawData: body,
      headers: signed(body),
    })
    assert.deepEqual(result, { action: "not_supported" })
  })

  it("throws when the service cannot confirm (Medusa retries)", async () => {
    stub.on("GET /api/v1/netvalve/status", {
      status: 503,
      body: { error: "DatabaseUnavailable", detail: "down", request_id: "r503" },
    })
    const body = notification()
    await assert.rejects(
      provider(stub.url).getWebhookActionAndData({
        data: {},
        rawData: body,
        headers: signed(body),
      }),
      rejected("NetValve gateway service", "DatabaseUnavailable", "r503")
    )
  })
})

describe("ledgerAction", () => {
  const cases: [Record<string, unknown>, string, number][] = [
    [{ state: "captured", status: "captured", captured_amount: "25.00" }, "captured", 25],
    [
      { state: "partially_refunded", status: "captured", captured_amount: "25.00" },
      "captured",
      25,
    ],
    [{ state: "refunded", status: "captured", captured_amount: "25.00" }, "captured", 25],
    [
      { state: "authorized", status: "authorized", authorized_amount: "12.34" },
      "authorized",
      12.34,
    ],
    [{ state: "requires_payment", status: "error", amount: "25.00" }, "failed", 25],
    [{ state: "requires_payment", status: "pending", amount: "25.00" }, "not_supported", 25],
    [{ state: "canceled", status: "canceled", amount: "25.00" }, "canceled", 25],
    [{ state: "pending", status: "pending", amount: "25.00" }, "pending", 25],
    [{ state: "something_new", status: "pending", amount: "25.00" }, "not_supported", 25],
  ]
  for (const [overrides, action, amount] of cases) {
    it(`maps ${String(overrides.state)} (${String(overrides.status)}) to ${action}`, () => {
      assert.deepEqual(ledgerAction(payment(overrides) as ServicePayment), {
        action,
        data: { session_id: SESSION_ID, amount },
      })
    })
  }
})
