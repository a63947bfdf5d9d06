import { randomBytes } from "node:crypto"
import { createServer, type IncomingHttpHeaders, type Server } from "node:http"
import type { AddressInfo } from "node:net"

import { NetvalveProviderService } from "../src/service"

export type Recorded = {
  method: string
  path: string
  query: URLSearchParams
  headers: IncomingHttpHeaders
  body: unknown
}

export type Reply = {
  status: number
  body?: unknown
  raw?: string
  headers?: Record<string, string>
}

type Handler = (request: Recorded) => Reply | "hang"

/** The gateway service, stubbed on 127.0.0.1: real HTTP, canned answers per "METHOD path". */
export class StubService {
  readonly requests: Recorded[] = []
  private routes = new Map<string, Handler>()
  private server: Server | undefined
  url = ""

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = []
      req.on("data", (chunk: Buffer) => chunks.push(chunk))
      req.on("end", () => {
        const url = new URL(req.url ?? "/", "http://stub")
        const text = Buffer.concat(chunks).toString("utf8")
        const recorded: Recorded = {
          method: req.method ?? "",
          path: url.pathname,
          query: url.searchParams,
          headers: req.headers,
          body: text === "" ? undefined : JSON.parse(text),
        }
        this.requests.push(recorded)
        const handler = this.routes.get(`${recorded.method} ${recorded.path}`)
        const reply: Reply | "hang" = handler
          ? handler(recorded)
          : { status: 404, body: { error: "NotFound", detail: "Not Found", request_id: "r404" } }
        if (reply === "hang") {
          return
        }
        res.writeHead(reply.status, {
          "Content-Type": reply.raw === undefined ? "application/json" : "text/html",
          "X-Request-ID": "hdr-request-id",
          ...reply.headers,
        })
        res.end(reply.raw ?? (reply.body === undefined ? "" : JSON.stringify(reply.body)))
      })
    })
    await new Promise<void>((resolve) => this.server?.listen(0, "127.0.0.1", resolve))
    const { port } = this.server.address() as AddressInfo
    this.url = `http://127.0.0.1:${port}`
    return this
  }

  on(route: string, handler: Handler | Reply): void {
    this.routes.set(route, typeof handler === "function" ? handler : () => handler)
  }

  reset(): void {
    this.routes.clear()
    this.requests.length = 0
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections()
    await new Promise<void>((resolve) => this.server?.close(() => resolve()))
  }
}

export const API_KEY = "nvk_test_provider_key_0123456789"
export const WEBHOOK_SECRET = `whsec_${randomBytes(32).toString("base64")}`
export const SESSION_ID = "payses_01JTESTSESSION0000000000000"
export const PAYMENT_ID = "9fc4d4e0-6338-4010-82f7-3808e1a0e109"

export function provider(gatewayUrl: string, extra: Record<string, unknown> = {}) {
  return new NetvalveProviderService(
    {},
    { gatewayUrl, apiKey: API_KEY, webhookSecret: WEBHOOK_SECRET, ...extra }
  )
}

/** A PaymentResponse as the service renders it. */
export function payment(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: PAYMENT_ID,
    payment_session_id: SESSION_ID,
    cart_id: "cart_01JTESTCART",
    currency_code: "EUR",
    amount: "25.00",
    status: "captured",
    state: "captured",
    transaction_id: 18747,
    authorized_amount: "25.00",
    captured_amount: "25.00",
    refunded_amount: "0.00",
    medusa_amount: "25",
    card_number: "401200******5439",
    card_type: "VISA",
    response_code: "GTW_1000",
    response_message: "Approved",
    in_progress: null,
    charged_back_amount: "0.00",
    charged_back_at: null,
    extra_charged_amount: "0.00",
    created_at: "2026-01-01T00:00:00Z",
    updated_at: "2026-01-01T00:00:00Z",
    ...overrides,
  }
}

export function serviceError(error: string, detail: string, extra: Record<string, unknown> = {}) {
  return { error, detail, request_id: `req-${error}`, ...extra }
}

/** A port nothing listens on. */
export async function closedPort(): Promise<string> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const { port } = server.address() as AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return `http://127.0.0.1:${port}`
}
