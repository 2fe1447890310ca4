import type * as Api from '../../src/index.js';

/** The test page's globals, as the Node side of the tests sees them in page.evaluate. */
export interface TestWindow {
  L: typeof Api;
  logger: Api.PosLogger;
  deliveries: Api.DeliveryEvent[];
  ready: boolean;
  [k: string]: unknown;
}
