import { ModuleProvider, Modules } from "@medusajs/framework/utils"

import { NetvalveProviderService } from "./service"

export { toDecimalString } from "./amount"
export type { NetvalveOptions } from "./options"
export { validateOptions } from "./options"
export { ledgerAction, NetvalveProviderService } from "./service"

export default ModuleProvider(Modules.PAYMENT, {
  services: [NetvalveProviderService],
})
