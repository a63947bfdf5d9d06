import type { BigNumberInput } from "@medusajs/framework/types"
import { BigNumber, MedusaError } from "@medusajs/framework/utils"

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null
}

/**
 * A BigNumber instance made by another copy of @medusajs/utils fails `instanceof` and has no own
 * `value`; its `raw` ({value, precision}) carries the exact amount.
 */
function normalized(input: BigNumberInput): BigNumberInput {
  const value: unknown = input
  if (value instanceof BigNumber || !isObject(value) || "value" in value) {
    return input
  }
  const raw: unknown = value.raw
  if (isObject(raw) && "value" in raw) {
    return raw as BigNumberInput
  }
  return input
}

/**
 * Medusa's amount (number, string, BigNumber or raw `{value, precision}`) as the major-unit
 * decimal string the service takes ("5", "12.5"), converted exactly: no float arithmetic.
 */
export function toDecimalString(input: BigNumberInput): string {
  const decimal = plainDecimal(input)
  if (decimal === undefined || /^0+(\.0+)?$/.test(decimal)) {
    throw new MedusaError(
      MedusaError.Types.INVALID_DATA,
      "medusa-payment-netvalve: the amount must be a positive finite number."
    )
  }
  return decimal
}

/** Digits with an optional fraction ("12.5"), or undefined for NaN, infinities and negatives. */
function plainDecimal(input: BigNumberInput): string | undefined {
  try {
    const decimal = new BigNumber(normalized(input)).bigNumber?.toFixed()
    return decimal !== undefined && /^[0-9]+(\.[0-9]+)?$/.test(decimal) ? decimal : undefined
  } catch {
    return undefined
  }
}

/** The service's major-unit decimal string as a number, for Medusa's webhook action data. */
export function toNumber(decimal: string): number {
  return new BigNumber(decimal).numeric
}
