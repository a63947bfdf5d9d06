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
        // Medusa waits this long before it hands a webhook to the provider, and retries it
        // this often if the provider throws. Short here so the suite is fast; a production
        // store keeps Medusa's defaults (5000 ms, 3 attempts).
        webhook_delay: Number(process.env.MEDUSA_WEBHOOK_DELAY_MS || 200),
        webhook_retries: 3,
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
