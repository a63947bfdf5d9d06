import { MedusaError } from "@medusajs/framework/utils"

export type NetvalveOptions = {
  /** Base URL of the NetValve gateway service, e.g. "http://netvalve-gateway:8000". */
  gatewayUrl: string
  /** A key of the service's `medusa` scope (MEDUSA_API_KEYS), sent as a Bearer token. */
  apiKey: string
  /** The service's MEDUSA_WEBHOOK_SECRET: `whsec_` + base64 of at least 24 bytes. */
  webhookSecret: string
  /** How long one call to the service may take, in ms (default 60000). */
  timeoutMs?: number
}

export const DEFAULT_TIMEOUT_MS = 60_000
// The service may spend its NetValve timeouts plus its 3 s unknown-outcome budget on one money
// call; a shorter wait here would turn answers the service is about to give into errors.
export const MIN_TIMEOUT_MS = 5_000
export const MAX_TIMEOUT_MS = 600_000
const MIN_SECRET_BYTES = 24

function invalid(message: string): MedusaError {
  return new MedusaError(MedusaError.Types.INVALID_DATA, `medusa-payment-netvalve: ${message}`)
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value)
}

function checkGatewayUrl(value: unknown): void {
  if (typeof value !== "string" || value.trim() === "") {
    throw invalid("the option `gatewayUrl` is required (the gateway service's base URL).")
  }
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw invalid("the option `gatewayUrl` is not a valid URL.")
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw invalid("the option `gatewayUrl` must be an http:// or https:// URL.")
  }
  if (url.username || url.password || url.search || url.hash) {
    throw invalid("the option `gatewayUrl` must not carry credentials, a query or a fragment.")
  }
}

function checkApiKey(value: unknown): void {
  if (typeof value !== "string" || value.trim() === "") {
    throw invalid("the option `apiKey` is required (a key of the service's MEDUSA_API_KEYS).")
  }
  if (!/^[\x21-\x7e]+$/.test(value)) {
    throw invalid("the option `apiKey` must be visible ASCII characters without spaces.")
  }
}

function checkWebhookSecret(value: unknown): void {
  if (typeof value !== "string" || value.trim() === "") {
    throw invalid("the option `webhookSecret` is required (the service's MEDUSA_WEBHOOK_SECRET).")
  }
  const encoded = value.startsWith("whsec_") ? value.slice("whsec_".length) : null
  if (encoded === null || !/^[A-Za-z0-9+/]+={0,2}$/.test(encoded) || encoded.length % 4 !== 0) {
    throw invalid("the option `webhookSecret` must be `whsec_` followed by base64.")
  }
  if (Buffer.from(encoded, "base64").length < MIN_SECRET_BYTES) {
    throw invalid(`the option \`webhookSecret\` must encode at least ${MIN_SECRET_BYTES} bytes.`)
  }
}

function checkTimeout(value: unknown): void {
  if (value === undefined) {
    return
  }
  if (
    typeof value !== "number" ||
    !Number.isInteger(value) ||
    value < MIN_TIMEOUT_MS ||
    value > MAX_TIMEOUT_MS
  ) {
    throw invalid(
      `the option \`timeoutMs\` must be an integer from ${MIN_TIMEOUT_MS} to ${MAX_TIMEOUT_MS}.`
    )
  }
}

/** Throws a MedusaError naming the first missing or malformed option; never prints a value. */
export function validateOptions(options: unknown): asserts options is NetvalveOptions {
  if (!isRecord(options)) {
    throw invalid("options are required: gatewayUrl, apiKey, webhookSecret.")
  }
  checkGatewayUrl(options.gatewayUrl)
  checkApiKey(options.apiKey)
  checkWebhookSecret(options.webhookSecret)
  checkTimeout(options.timeoutMs)
}
