// The local test world in one import: relay, Lightning, mint, NWC wallet service, providers
// and the scenario that builds them together.
import './ws-global.ts';
export { startRelay, type TestRelay, type RelayOptions } from './relay.ts';
export { LightningNetwork, LightningError, decodeInvoice, type Clock, type Invoice, type LightningNode, type Payment } from './lightning.ts';
export { startMint, type TestMint, type MintOptions, type MintKnobs, type MintRateLimit, type KeysetIdVersion } from './mint.ts';
export { startNwcService, type TestNwcService, type NwcServiceOptions, type NwcPayment, type NwcKnobs } from './nwc.ts';
export { startProvider, type TestProvider, type ProviderOptions, type ProviderKnobs, type ModelSpec, type UpstreamError, type PriceChange } from './provider.ts';
export {
  startWorld,
  parseScenario,
  defaultScenario,
  seededRandom,
  spellMint,
  scenarioSchema,
  ScenarioError,
  type Scenario,
  type World,
  type WorldInfo,
  type WorldOptions,
} from './scenario.ts';
