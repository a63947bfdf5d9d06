import assert from "node:assert/strict"
import { describe, it } from "node:test"

import { MedusaError } from "@medusajs/framework/utils"

import { NetvalveProviderService } from "../src/service"
import { API_KEY, WEBHOOK_SECRET } from "./stub"

const VALID = {
  gatewayUrl: "http://netvalve-gateway:8000",
  apiKey: API_KEY,
  webhookSecret: WEBHOOK_SECRET,
}

function refuses(options: unknown, fragment: string, secretValue?: string) {
  assert.throws(
    () => NetvalveProviderService.validateOptions(options as Record<string, unknown>),
    (error: unknown) => {
      assert.ok(MedusaError.isMedusaError(error), String(error))
      assert.equal(error.type, MedusaError.Types.INVALID_DATA)
      assert.ok(error.message.includes(fragment), error.message)
      if (secretValue) {
        assert.ok(!error.message.includes(secretValue), "the message prints the value")
      }
      return true
    }
  )
}

describe("validateOptions", () => {
  it("accepts the documented options", () => {
    NetvalveProviderService.validateOptions(VALID)
    NetvalveProviderService.validateOptions({ ...VALID, gatewayUrl: "https://gw.example/base/" })
    NetvalveProviderService.validateOptions({ ...VALID, timeoutMs: 90_000 })
  })

  it("names a missing option", () => {
    refuses(undefined, "gatewayUrl")
    for (const name of ["gatewayUrl", "apiKey", "webhookSecret"] as const) {
      const options: Record<string, unknown> = { ...VALID }
      delete options[name]
      refuses(options, `\`${name}\``)
      refuses({ ...VALID, [name]: "" }, `\`${name}\``)
    }
  })

  it("names a malformed gateway URL", () => {
    refuses({ ...VALID, gatewayUrl: "netvalve-gateway:8000" }, "`gatewayUrl` must be an http")
    refuses({ ...VALID, gatewayUrl: "not a url" }, "`gatewayUrl` is not a valid URL")
    refuses({ ...VALID, gatewayUrl: "ftp://gw.example" }, "`gatewayUrl` must be an http")
    refuses({ ...VALID, gatewayUrl: "http://user:pw@gw.example" }, "`gatewayUrl` must not", "pw")
  })

  it("names a malformed key or secret without printing it", () => {
    refuses({ ...VALID, apiKey: "has a space" }, "`apiKey`", "has a space")
    refuses({ ...VALID, webhookSecret: "plain-secret-value" }, "`whsec_`", "plain-secret-value")
    refuses({ ...VALID, webhookSecret: "whsec_c2hvcnQ=" }, "at least 24 bytes", "c2hvcnQ=")
    refuses({ ...VALID, webhookSecret: "whsec_not*base64" }, "`webhookSecret`", "not*base64")
  })

  it("names a timeout that cannot outlast the service's own budget", () => {
    refuses({ ...VALID, timeoutMs: 3000 }, "`timeoutMs`")
    refuses({ ...VALID, timeoutMs: 12.5 }, "`timeoutMs`")
    refuses({ ...VALID, timeoutMs: "60000" }, "`timeoutMs`")
  })

  it("is applied when the provider is built", () => {
    assert.throws(
      () => new NetvalveProviderService({}, { ...VALID, apiKey: "" }),
      (error: unknown) => MedusaError.isMedusaError(error) && error.message.includes("`apiKey`")
    )
  })
})
