// A minimal headless Medusa 2.21.2 store for tests/medusa: no admin UI, no Redis (Medusa then
// uses its in-memory event bus, locking and workflow engine), one payment provider: NetValve
// through netvalve-gateway. Everything comes from the environment, which tests/medusa sets.
import { defineConfig, loadEnv } from "@medusajs/framework/utils"

loadEnv(process.env.NODE_ENV || "development", process.cwd())

// Test defaults, never for a real store: the suite runs on loopback only.
const TEST_SECRET = "medusa-test-store-not-a-secret"

module.exports = defineConfig({
  projectConfig: {
    databaseUrl: process.env.DATABASE_URL,
    http: {
      storeCors: process.env.STORE_CORS || "http://localhost:8000",
      adminCors: process.env.ADMIN_CORS || "http://localhost:9000",
      authCors: process.env.AUTH_CORS || "http://localhost:8000,http://localhost:9000",
      jwtSecret: process.env.JWT_SECRET || TEST_SECRET,
      cookieSecret: process.env.COOKIE_SECRET || TEST_SECRET,
    },
  },
  admin: { disable: true },
  modules: [
    {
      resolve: "@medusajs/medusa/payment",
      options: {
        // No `webhook_delay` / `webhook_retries` here: Medusa 2.21.2's webhook route reads them
        // from the payment module service's `options`, which that service does not have (the
        // route says so in a @ts-expect-error), so every notification waits the default 5000 ms
        // before the provider sees it, and the in-memory event bus used without Redis does
        // not retry a notification the provider rejects. tests/medusa allows for both.
        providers: [
          {
            resolve: "medusa-payment-netvalve",
            id: "netvalve",
            options: {
              gatewayUrl: process.env.NETVALVE_GATEWAY_URL,
              apiKey: process.env.NETVALVE_GATEWAY_API_KEY,
              webhookSecret: process.env.MEDUSA_WEBHOOK_SECRET,
            },
          },
        ],
      },
    },
  ],
})
