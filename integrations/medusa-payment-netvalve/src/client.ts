import { MedusaError } from "@medusajs/framework/utils"

import { DEFAULT_TIMEOUT_MS, type NetvalveOptions } from "./options"

export const API_PREFIX = "/api/v1/netvalve"

/** The service's PaymentResponse (amounts are major-unit decimal strings). */
export type ServicePayment = {
  id: string
  payment_session_id: string
  cart_id: string | null
  currency_code: string
  amount: string
  status: string
  state: string
  transaction_id: number | null
  authorized_amount: string
  captured_amount: string
  refunded_amount: string
  response_code: string | null
  response_message: string | null
  in_progress: string | null
  card_number?: string | null
  card_type?: string | null
}

/** The service's HpfSessionResponse. */
export type ServiceHpfSession = {
  id: string
  payment_session_id: string
  source: string
  script_src: string | null
  integrity: string | null
  payment_token: string | null
  redirect_url: string | null
  amount: string
  currency_code: string
  expires_at: string
  reused: boolean
}

export type Answer = {
  /** "POST /api/v1/netvalve/payment": what was asked, for messages. */
  what: string
  status: number
  body: Record<string, unknown>
  requestId: string | null
}

type Request = {
  method: "GET" | "POST"
  path: string
  query?: Record<string, string>
  body?: Record<string, unknown>
  idempotencyKey?: string | undefined
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value)
}

/** `{error, detail, request_id}` (also `{error: {type, message, request_id}}`) in words. */
export function describeError(answer: Answer): string {
  const { body } = answer
  let type: unknown = body.error
  let message: unknown = body.detail ?? body.message
  let requestId: unknown = body.request_id
  if (isRecord(type)) {
    message = type.message ?? type.detail
    requestId = type.request_id ?? requestId
    type = type.type
  }
  if (Array.isArray(message)) {
    message = message
      .map((issue) =>
        isRecord(issue) ? `${[issue.loc].flat().join(".")}: ${String(issue.msg)}` : String(issue)
      )
      .join("; ")
  }
  const parts = [`HTTP ${answer.status}`]
  if (typeof type === "string" && type) {
    parts.push(type)
  }
  const text = parts.join(" ") + (typeof message === "string" && message ? `: ${message}` : "")
  const id = typeof requestId === "string" && requestId ? requestId : answer.requestId
  return id ? `${text} (request_id ${id})` : text
}

export function errorType(answer: Answer): string | null {
  const error = answer.body.error
  if (typeof error === "string") {
    return error
  }
  return isRecord(error) && typeof error.type === "string" ? error.type : null
}

export function isPayment(value: unknown): value is ServicePayment {
  return (
    isRecord(value) &&
    typeof value.id === "string" &&
    typeof value.status === "string" &&
    typeof value.state === "string"
  )
}

/** Server-to-server calls to the NetValve gateway service's REST API. */
export class GatewayClient {
  private readonly baseUrl: string
  private readonly timeoutMs: number

  constructor(private readonly options: NetvalveOptions) {
    this.baseUrl = options.gatewayUrl.replace(/\/+$/, "")
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
  }

  /** Any answer below 500; 5xx, network errors and timeouts throw (the service's fault). */
  async send(request: Request): Promise<Answer> {
    const url = new URL(`${this.baseUrl}${API_PREFIX}${request.path}`)
    for (const [name, value] of Object.entries(request.query ?? {})) {
      url.searchParams.set(name, value)
    }
    const headers: Record<string, string> = {
      Accept: "application/json",
      Authorization: `Bearer ${this.options.apiKey}`,
    }
    if (request.body !== undefined) {
      headers["Content-Type"] = "application/json"
    }
    if (request.idempotencyKey) {
      headers["Idempotency-Key"] = request.idempotencyKey
    }
    const what = `${request.method} ${API_PREFIX}${request.path}`
    let response: Response
    let text: string
    try {
      response = await fetch(url, {
        method: request.method,
        headers,
        body: request.body === undefined ? undefined : JSON.stringify(request.body),
        signal: AbortSignal.timeout(this.timeoutMs),
        redirect: "error",
      })
      text = await response.text()
    } catch (error) {
      throw this.unreachable(what, error)
    }
    const answer: Answer = {
      what,
      status: response.status,
      body: parse(text),
      requestId: response.headers.get("x-request-id"),
    }
    if (answer.status >= 500) {
      throw new MedusaError(
        MedusaError.Types.UNEXPECTED_STATE,
        `The NetValve gateway service at ${this.baseUrl} failed ${what}: ${describeError(answer)}`
      )
    }
    return answer
  }

  private unreachable(what: string, error: unknown): MedusaError {
    const name = error instanceof Error ? error.name : ""
    if (name === "TimeoutError" || name === "AbortError") {
      return new MedusaError(
        MedusaError.Types.UNEXPECTED_STATE,
        `The NetValve gateway service at ${this.baseUrl} did not answer ${what} within ` +
          `${this.timeoutMs} ms; its outcome is unknown until the service settles it.`
      )
    }
    const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error
    const reason = cause instanceof Error ? cause.message : String(cause)
    return new MedusaError(
      MedusaError.Types.UNEXPECTED_STATE,
      `The NetValve gateway service at ${this.baseUrl} is unreachable (${what}): ${reason}`
    )
  }
}

function parse(text: string): Record<string, unknown> {
  if (text === "") {
    return {}
  }
  try {
    const value: unknown = JSON.parse(text)
    return isRecord(value) ? value : { detail: text.slice(0, 200) }
  } catch {
    return { detail: `a non-JSON answer: ${text.slice(0, 200)}` }
  }
}

/** A 4xx the provider does not map: thrown with the service's own words. */
export function refused(answer: Answer): MedusaError {
  const type =
    answer.status === 404
      ? MedusaError.Types.NOT_FOUND
      : answer.status === 409
        ? MedusaError.Types.NOT_ALLOWED
        : answer.status === 401 || answer.status === 403 || answer.status === 429
          ? MedusaError.Types.UNEXPECTED_STATE
          : MedusaError.Types.INVALID_DATA
  return new MedusaError(
    type,
    `The NetValve gateway service refused ${answer.what}: ${describeError(answer)}`
  )
}
