// Seeds the smallest store a checkout through NetValve needs, with Medusa's own workflows:
//   npx medusa exec ./src/scripts/seed.ts
// With ADMIN_EMAIL and ADMIN_PASSWORD set it also creates that admin user, as
// `npx medusa user -e ... -p ...` does (one Medusa boot instead of two).
// The ids and the publishable key the tests need are printed as JSON on the last line, and
// written to $SEED_OUTPUT when it is set.
import { writeFileSync } from "fs"
import type { ExecArgs } from "@medusajs/framework/types"
import { ContainerRegistrationKeys, Modules, ProductStatus } from "@medusajs/framework/utils"
import {
  createApiKeysWorkflow,
  createInventoryLevelsWorkflow,
  createProductsWorkflow,
  createRegionsWorkflow,
  createSalesChannelsWorkflow,
  createShippingOptionsWorkflow,
  createShippingProfilesWorkflow,
  createStockLocationsWorkflow,
  createUserAccountWorkflow,
  linkSalesChannelsToApiKeyWorkflow,
  linkSalesChannelsToStockLocationWorkflow,
  updateStoresWorkflow,
} from "@medusajs/medusa/core-flows"

const PROVIDER_ID = "pp_netvalve_netvalve"
const COUNTRIES = ["de", "fr", "nl"]
const SHIPPING_EUR = 10
// Cart totals with shipping: 25.00 (approves with a good card) and 1002.00 (the sandbox's
// pending trigger amount).
const PRODUCTS = [
  { key: "tee", title: "NetValve Tee", sku: "NV-TEE", price: 15 },
  { key: "pending", title: "Pending Trigger", sku: "NV-PENDING", price: 992 },
]

export default async function seed({ container }: ExecArgs): Promise<void> {
  const logger = container.resolve(ContainerRegistrationKeys.LOGGER)
  const link = container.resolve(ContainerRegistrationKeys.LINK)
  const query = container.resolve(ContainerRegistrationKeys.QUERY)
  const fulfillment = container.resolve(Modules.FULFILLMENT)
  const storeModule = container.resolve(Modules.STORE)

  const [store] = await storeModule.listStores()
  const { result: channels } = await createSalesChannelsWorkflow(container).run({
    input: { salesChannelsData: [{ name: "NetValve Test Channel" }] },
  })
  const channel = channels[0]

  const { result: regions } = await createRegionsWorkflow(container).run({
    input: {
      regions: [
        {
          name: "Europe",
          currency_code: "eur",
          countries: COUNTRIES,
          payment_providers: [PROVIDER_ID],
        },
      ],
    },
  })
  const region = regions[0]

  await updateStoresWorkflow(container).run({
    input: {
      selector: { id: store.id },
      update: {
        supported_currencies: [{ currency_code: "eur", is_default: true }],
        default_sales_channel_id: channel.id,
        default_region_id: region.id,
      },
    },
  })

  const { result: locations } = await createStockLocationsWorkflow(container).run({
    input: {
      locations: [
        { name: "Test Warehouse", address: { city: "Berlin", country_code: "DE", address_1: "" } },
      ],
    },
  })
  const location = locations[0]
  await link.create({
    [Modules.STOCK_LOCATION]: { stock_location_id: location.id },
    [Modules.FULFILLMENT]: { fulfillment_provider_id: "manual_manual" },
  })

  const existingProfiles = await fulfillment.listShippingProfiles({ type: "default" })
  let profile = existingProfiles[0]
  if (!profile) {
    const { result } = await createShippingProfilesWorkflow(container).run({
      input: { data: [{ name: "Default Shipping Profile", type: "default" }] },
    })
    profile = result[0]
  }

  const fulfillmentSet = await fulfillment.createFulfillmentSets({
    name: "Test Warehouse delivery",
    type: "shipping",
    service_zones: [
      {
        name: "Europe",
        geo_zones: COUNTRIES.map((country_code) => ({ country_code, type: "country" as const })),
      },
    ],
  })
  await link.create({
    [Modules.STOCK_LOCATION]: { stock_location_id: location.id },
    [Modules.FULFILLMENT]: { fulfillment_set_id: fulfillmentSet.id },
  })

  const { result: shippingOptions } = await createShippingOptionsWorkflow(container).run({
    input: [
      {
        name: "Standard Shipping",
        price_type: "flat",
        provider_id: "manual_manual",
        service_zone_id: fulfillmentSet.service_zones[0].id,
        shipping_profile_id: profile.id,
        type: { label: "Standard", description: "Ships in 2-3 days.", code: "standard" },
        prices: [
          { currency_code: "eur", amount: SHIPPING_EUR },
          { region_id: region.id, amount: SHIPPING_EUR },
        ],
        rules: [
          { attribute: "enabled_in_store", value: "true", operator: "eq" },
          { attribute: "is_return", value: "false", operator: "eq" },
        ],
      },
    ],
  })

  await linkSalesChannelsToStockLocationWorkflow(container).run({
    input: { id: location.id, add: [channel.id] },
  })

  const { result: keys } = await createApiKeysWorkflow(container).run({
    input: { api_keys: [{ title: "Test storefront", type: "publishable", created_by: "" }] },
  })
  const publishable = keys[0]
  await linkSalesChannelsToApiKeyWorkflow(container).run({
    input: { id: publishable.id, add: [channel.id] },
  })

  const { result: products } = await createProductsWorkflow(container).run({
    input: {
      products: PRODUCTS.map((product) => ({
        title: product.title,
        status: ProductStatus.PUBLISHED,
        shipping_profile_id: profile.id,
        options: [{ title: "Size", values: ["One size"] }],
        variants: [
          {
            title: "One size",
            sku: product.sku,
            options: { Size: "One size" },
            manage_inventory: true,
            prices: [{ amount: product.price, currency_code: "eur" }],
          },
        ],
        sales_channels: [{ id: channel.id }],
      })),
    },
  })

  const { data: items } = await query.graph({ entity: "inventory_item", fields: ["id"] })
  await createInventoryLevelsWorkflow(container).run({
    input: {
      inventory_levels: items.map((item: { id: string }) => ({
        location_id: location.id,
        stocked_quantity: 1_000_000,
        inventory_item_id: item.id,
      })),
    },
  })

  if (process.env.ADMIN_EMAIL && process.env.ADMIN_PASSWORD) {
    await createAdmin(container, process.env.ADMIN_EMAIL, process.env.ADMIN_PASSWORD)
  }

  const variants: Record<string, string> = {}
  PRODUCTS.forEach((product, index) => {
    variants[product.key] = products[index].variants[0].id
  })
  const output = {
    region_id: region.id,
    sales_channel_id: channel.id,
    publishable_key: publishable.token,
    stock_location_id: location.id,
    shipping_option_id: shippingOptions[0].id,
    variants,
    provider_id: PROVIDER_ID,
  }
  if (process.env.SEED_OUTPUT) {
    writeFileSync(process.env.SEED_OUTPUT, JSON.stringify(output, null, 2))
  }
  logger.info("seeded the NetValve test store")
  console.log(JSON.stringify(output))
}

async function createAdmin(
  container: ExecArgs["container"],
  email: string,
  password: string
): Promise<void> {
  const auth = container.resolve(Modules.AUTH)
  const { authIdentity, error } = await auth.register("emailpass", { body: { email, password } })
  if (error || !authIdentity) {
    throw new Error(`could not register the admin's email and password: ${error}`)
  }
  await createUserAccountWorkflow(container).run({
    input: { authIdentityId: authIdentity.id, userData: { email } },
  })
}
