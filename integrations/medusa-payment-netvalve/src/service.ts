import type {
  AuthorizePaymentInput,
  AuthorizePaymentOutput,
  CancelPaymentInput,
  CancelPaymentOutput,
  CapturePaymentInput,
  CapturePaymentOutput,
  DeletePaymentInput,
  DeletePaymentOutput,
  GetPaymentStatusInput,
  GetPaymentStatusOutput,
  InitiatePaymentInput,
  InitiatePaymentOutput,
  PaymentSessionStatus,
  ProviderWebhookPayload,
  RefundPaymentInput,
  RefundPaymentOutput,
  RetrievePaymentInput,
  RetrievePaymentOutput,
  UpdatePaymentInput,
  UpdatePaymentOutput,
  WebhookActionResult,
} from "@medusajs/framework/types"
import { AbstractPaymentProvider, MedusaError, PaymentActions } from "@medusajs/framework/utils"
import { Webhook } from "standardwebhooks"

import { toDecimalString, toNumber } from "./amount"
import {
  type Answer,
  errorType,
  GatewayClient,
  isPayment,
  refused,
  type ServiceHpfSession,
  type ServicePayment,
} from "./client"
import { type NetvalveOptions, validateOptions } from "./options"

type Data = Record<string, unknown>

const SESSION_STATUSES: ReadonlySet<string> = new Set<PaymentSessionStatus>([
  "authorized",
  "captured",
  "pending",
  "requires_more",
  "error",
  "canceled",
])
// Ledger states in which the money has been taken (a refund does not undo the capture).
const SETTLED_STATES: ReadonlySet<string> = new Set(["captured", "partially_refunded", "refunded"])
// 409s of POST /payment that mean "this session's payment exists or is under way": the ledger,
// not the error, says where it stands.
const PAYMENT_UNDER_WAY: ReadonlySet<string> = new Set([
  "PaymentInProgress",
  "IdempotencyKeyInFlight",
  "PaymentStateConflict",
])

function invalid(message: string): MedusaError {
  return new MedusaError(MedusaError.Types.INVALID_DATA, `medusa-payment-netvalve: ${message}`)
}

function stringField(data: Data | undefined, name: string): string | undefined {
  const value = data?.[name]
  return typeof value === "string" && value !== "" ? value : undefined
}

function sessionIdOf(data: Data | undefined): string {
  const sessionId = stringField(data, "session_id")
  if (sessionId === undefined) {
    throw invalid("the payment session's data has no session_id.")
  }
  return sessionId
}

function sessionStatus(status: string): PaymentSessionStatus {
  return SESSION_STATUSES.has(status) ? (status as PaymentSessionStatus) : "pending"
}

/** What the session's (or payment's) data keeps of the service's payment. */
function paymentData(payment: ServicePayment): Data {
  return {
    payment_id: payment.id,
    netvalve_status: payment.status,
    netvalve_state: payment.state,
    transaction_id: payment.transaction_id,
    currency_code: payment.currency_code,
    amount: payment.amount,
    authorized_amount: payment.authorized_amount,
    captured_amount: payment.captured_amount,
    refunded_amount: payment.refunded_amount,
    in_progress: payment.in_progress,
    response_code: payment.response_code,
    response_message: payment.response_message,
    card_number: payment.card_number ?? null,
    card_type: payment.card_type ?? null,
  }
}

/** What the storefront needs to render the hosted payment fields. */
function hpfData(session: ServiceHpfSession): Data {
  return {
    hpf_session_id: session.id,
    source: session.source,
    payment_token: session.payment_token,
    script_src: session.script_src,
    integrity: session.integrity,
    redirect_url: session.redirect_url,
    expires_at: session.expires_at,
    amount: session.amount,
    currency_code: session.currency_code,
  }
}

function paymentOf(answer: Answer, from: unknown = answer.body): ServicePayment {
  if (!isPayment(from)) {
    throw new MedusaError(
      MedusaError.Types.UNEXPECTED_STATE,
      `The NetValve gateway service answered ${answer.what} with HTTP ${answer.status} ` +
        "but no payment."
    )
  }
  return from
}

function headerValue(headers: Record<string, unknown>, name: string): string | undefined {
  const value = headers[name]
  if (typeof value === "string") {
    return value
  }
  return Array.isArray(value) && typeof value[0] === "string" ? value[0] : undefined
}

function rawText(rawData: unknown): string {
  if (typeof rawData === "string") {
    return rawData
  }
  if (rawData instanceof Uint8Array) {
    return Buffer.from(rawData).toString("utf8")
  }
  // A Buffer that went through JSON (an event bus) arrives as {type: "Buffer", data: [...]}.
  if (
    typeof rawData === "object" &&
    rawData !== null &&
    (rawData as Data).type === "Buffer" &&
    Array.isArray((rawData as Data).data)
  ) {
    return Buffer.from((rawData as { data: number[] }).data).toString("utf8")
  }
  throw invalid("the notification has no raw body to verify.")
}

/**
 * Medusa's payment provider for the NetValve gateway service: every method is a call to the
 * service's REST API, which holds the NetValve credentials and the ledger.
 */
export class NetvalveProviderService extends AbstractPaymentProvider<NetvalveOptions> {
  static override identifier = "netvalve"

  protected readonly client: GatewayClient
  protected readonly webhook: Webhook

  static override validateOptions(options: Record<string, unknown>): void {
    validateOptions(options)
  }

  constructor(container: Record<string, unknown>, options: NetvalveOptions) {
    super(container, options)
    validateOptions(options)
    this.client = new GatewayClient(options)
    this.webhook = new Webhook(options.webhookSecret)
  }

  async initiatePayment(input: InitiatePaymentInput): Promise<InitiatePaymentOutput> {
    const sessionId = sessionIdOf(input.data)
    const session = await this.openHostedFields(sessionId, input.context?.idempotency_key)
    return { id: sessionId, data: { ...input.data, session_id: sessionId, ...hpfData(session) } }
  }

  async authorizePayment(input: AuthorizePaymentInput): Promise<AuthorizePaymentOutput> {
    const data = input.data ?? {}
    const sessionId = sessionIdOf(data)
    const token = stringField(data, "payment_token")
    if (token === undefined) {
      throw invalid("the payment session's data has no payment_token: open the hosted fields.")
    }
    const answer = await this.client.send({
      method: "POST",
      path: "/payment",
      body: { payment_session_id: sessionId, payment_token: token },
      idempotencyKey: input.context?.idempotency_key ?? sessionId,
    })
    const type = errorType(answer)
    if (answer.status === 200 || (answer.status === 409 && type === "AlreadyPaid")) {
      const payment = paymentOf(answer, answer.status === 200 ? answer.body : answer.body.payment)
      return { status: sessionStatus(payment.status), data: { ...data, ...paymentData(payment) } }
    }
    if (answer.status === 202) {
      const payment = paymentOf(answer)
      return {
        status: "pending",
        data: { ...data, ...paymentData(payment), netvalve_status: "pending" },
      }
    }
    if (answer.status === 402) {
      return { status: "error", data: { ...data, ...this.declined(answer) } }
    }
    if (answer.status === 409 && type !== null && PAYMENT_UNDER_WAY.has(type)) {
      const current = await this.ledger({ payment_session_id: sessionId })
      if (current !== null) {
        return { status: sessionStatus(current.status), data: { ...data, ...paymentData(current) } }
      }
    }
    throw refused(answer)
  }

  async capturePayment(input: CapturePaymentInput): Promise<CapturePaymentOutput> {
    const data = input.data ?? {}
    const paymentId = this.paymentIdOf(data, "capture")
    const answer = await this.client.send({
      method: "POST",
      path: "/capture",
      body: { payment_id: paymentId },
      idempotencyKey: input.context?.idempotency_key,
    })
    if (answer.status === 200) {
      return { data: { ...data, ...paymentData(paymentOf(answer)) } }
    }
    if (answer.status === 202) {
      // Not recorded in Medusa until NetValve settles it: the service's notification then
      // brings Medusa's capture workflow back here, and the captured ledger answers below.
      throw new MedusaError(
        MedusaError.Types.NOT_ALLOWED,
        `NetValve has not settled the capture of payment ${paymentId} yet; the NetValve ` +
          "gateway service will tell Medusa when it does."
      )
    }
    if (answer.status === 409 || answer.status === 422) {
      // Already captured (by a retry, NetValve's portal or the sale itself): done, as the
      // ledger shows it.
      const current = await this.ledger({ payment_id: paymentId })
      if (current !== null && SETTLED_STATES.has(current.state)) {
        return { data: { ...data, ...paymentData(current) } }
      }
    }
    throw this.refusedOrDeclined(answer)
  }

  async refundPayment(input: RefundPaymentInput): Promise<RefundPaymentOutput> {
    const data = input.data ?? {}
    const paymentId = this.paymentIdOf(data, "refund")
    const answer = await this.client.send({
      method: "POST",
      path: "/refund",
      body: { payment_id: paymentId, amount: toDecimalString(input.amount) },
      idempotencyKey: input.context?.idempotency_key,
    })
    // A 202 (sent, outcome not known yet) is recorded too: nothing would tell Medusa of the
    // refund later, and a second refund asked for the same money could pay it twice.
    if (answer.status === 200 || answer.status === 202) {
      return { data: { ...data, ...paymentData(paymentOf(answer)) } }
    }
    throw this.refusedOrDeclined(answer)
  }

  async cancelPayment(input: CancelPaymentInput): Promise<CancelPaymentOutput> {
    const data = input.data ?? {}
    const paymentId = stringField(data, "payment_id")
    if (paymentId === undefined) {
      return { data } // no payment was made: nothing to cancel at NetValve
    }
    const answer = await this.client.send({
      method: "POST",
      path: "/cancel",
      body: { payment_id: paymentId },
      idempotencyKey: input.context?.idempotency_key,
    })
    if (answer.status === 200) {
      return { data: { ...data, ...paymentData(paymentOf(answer)) } }
    }
    if (answer.status === 202) {
      throw new MedusaError(
        MedusaError.Types.NOT_ALLOWED,
        `NetValve has not settled the cancellation of payment ${paymentId} yet; retry shortly.`
      )
    }
    throw this.refusedOrDeclined(answer)
  }

  async getPaymentStatus(input: GetPaymentStatusInput): Promise<GetPaymentStatusOutput> {
    const data = input.data ?? {}
    const payment = await this.ledger(this.reference(data))
    if (payment === null) {
      return { status: "pending", data } // nothing charged yet
    }
    return { status: sessionStatus(payment.status), data: { ...data, ...paymentData(payment) } }
  }

  async retrievePayment(input: RetrievePaymentInput): Promise<RetrievePaymentOutput> {
    const data = input.data ?? {}
    const answer = await this.client.send({
      method: "GET",
      path: "/status",
      query: this.reference(data),
    })
    if (answer.status === 200 || answer.status === 202) {
      return { data: { ...data, ...paymentData(paymentOf(answer)) } }
    }
    throw refused(answer)
  }

  /**
   * The service charges Medusa's current session amount at authorization, so nothing is sent
   * ahead of it: before a payment the hosted fields are re-opened (fresh token and expiry for
   * the new amount); once a payment exists the data is kept as it is.
   */
  async updatePayment(input: UpdatePaymentInput): Promise<UpdatePaymentOutput> {
    const data = input.data ?? {}
    const sessionId = stringField(data, "session_id")
    if (sessionId === undefined || stringField(data, "payment_id") !== undefined) {
      return { data }
    }
    const session = await this.openHostedFields(sessionId, input.context?.idempotency_key)
    return { data: { ...data, ...hpfData(session) } }
  }

  /** Medusa deletes a session only before it is authorized: NetValve holds nothing to undo
   * (an unused hosted-fields token expires on its own). */
  async deletePayment(input: DeletePaymentInput): Promise<DeletePaymentOutput> {
    return { data: input.data ?? {} }
  }

  /**
   * A notification from the service: verified (Standard Webhooks signature and a timestamp
   * within 5 minutes), then mapped from the ledger as the service shows it now, never from the
   * body; a replay can only move Medusa to where the ledger already is.
   */
  async getWebhookActionAndData(
    payload: ProviderWebhookPayload["payload"]
  ): Promise<WebhookActionResult> {
    const headers: Record<string, string> = {}
    for (const name of ["webhook-id", "webhook-timestamp", "webhook-signature"]) {
      const value = headerValue(payload.headers ?? {}, name)
      if (value !== undefined) {
        headers[name] = value
      }
    }
    let body: unknown
    try {
      body = this.webhook.verify(rawText(payload.rawData), headers)
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error)
      throw new MedusaError(
        MedusaError.Types.UNAUTHORIZED,
        `medusa-payment-netvalve: the notification failed verification: ${reason}`
      )
    }
    const notified = typeof body === "object" && body !== null ? (body as Data).data : undefined
    const sessionId =
      typeof notified === "object" && notified !== null
        ? stringField(notified as Data, "session_id")
        : undefined
    if (sessionId === undefined) {
      return { action: PaymentActions.NOT_SUPPORTED }
    }
    const payment = await this.ledger({ payment_session_id: sessionId })
    if (payment === null || payment.payment_session_id !== sessionId) {
      return { action: PaymentActions.NOT_SUPPORTED }
    }
    return ledgerAction(payment)
  }

  private async openHostedFields(
    sessionId: string,
    idempotencyKey: string | undefined
  ): Promise<ServiceHpfSession> {
    const answer = await this.client.send({
      method: "POST",
      path: "/hpf/session",
      body: { payment_session_id: sessionId },
      idempotencyKey,
    })
    if (answer.status !== 200) {
      throw refused(answer)
    }
    const session = answer.body as Partial<ServiceHpfSession>
    if (typeof session.id !== "string" || typeof session.expires_at !== "string") {
      throw new MedusaError(
        MedusaError.Types.UNEXPECTED_STATE,
        `The NetValve gateway service answered ${answer.what} without a session.`
      )
    }
    return session as ServiceHpfSession
  }

  /** GET /status: the payment as the ledger has it, or null when there is none (404). */
  private async ledger(query: Record<string, string>): Promise<ServicePayment | null> {
    const answer = await this.client.send({ method: "GET", path: "/status", query })
    if (answer.status === 404) {
      return null
    }
    if (answer.status === 200 || answer.status === 202) {
      return paymentOf(answer)
    }
    throw refused(answer)
  }

  private reference(data: Data): Record<string, string> {
    const sessionId = stringField(data, "session_id")
    if (sessionId !== undefined) {
      return { payment_session_id: sessionId }
    }
    const paymentId = stringField(data, "payment_id")
    if (paymentId !== undefined) {
      return { payment_id: paymentId }
    }
    throw invalid("the payment's data has neither session_id nor payment_id.")
  }

  private paymentIdOf(data: Data, verb: string): string {
    const paymentId = stringField(data, "payment_id")
    if (paymentId === undefined) {
      throw invalid(`no NetValve payment to ${verb}: the payment's data has no payment_id.`)
    }
    return paymentId
  }

  private declined(answer: Answer): Data {
    const body = answer.body
    return {
      ...paymentData(paymentOf(answer, body.payment)),
      netvalve_status: "error",
      decline: {
        code: body.response_code ?? null,
        message: body.response_message ?? body.detail ?? null,
        decline_type: body.decline_type ?? null,
      },
    }
  }

  private refusedOrDeclined(answer: Answer): MedusaError {
    if (answer.status !== 402) {
      return refused(answer)
    }
    const { response_code: code, response_message: message, detail } = answer.body
    return new MedusaError(
      MedusaError.Types.NOT_ALLOWED,
      `NetValve declined ${answer.what}: ${String(code ?? "no code")} ` +
        `${String(message ?? detail ?? "")}`.trimEnd()
    )
  }
}

/** The ledger's current state as Medusa's webhook action (contract section D). */
export function ledgerAction(payment: ServicePayment): WebhookActionResult {
  const result = (action: PaymentActions, amount: string): WebhookActionResult => ({
    action,
    data: { session_id: payment.payment_session_id, amount: toNumber(amount) },
  })
  if (SETTLED_STATES.has(payment.state)) {
    return result(PaymentActions.SUCCESSFUL, payment.captured_amount)
  }
  switch (payment.state) {
    case "authorized":
      return result(PaymentActions.AUTHORIZED, payment.authorized_amount)
    case "requires_payment":
      return payment.status === "error"
        ? result(PaymentActions.FAILED, payment.amount)
        : result(PaymentActions.NOT_SUPPORTED, payment.amount)
    case "canceled":
      return result(PaymentActions.CANCELED, payment.amount)
    case "pending":
      return result(PaymentActions.PENDING, payment.amount)
    default:
      return result(PaymentActions.NOT_SUPPORTED, payment.amount)
  }
}
