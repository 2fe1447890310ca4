import type * as Api from '../../src/index.js';

/** The test page's globals, as the Node side of the tests sees them in page.evaluate. */
export interface TestWindow {
  L: typeof Api;
  logger: Api.PosLogger;
  deliveries: Api.DeliveryEvent[];
  ready: boolean;
  [k: string]: unknown;
}

/** The spool lab page's globals. */
export interface LabWindow {
  lab: {
    IdbSpool: typeof import('../../src/idb-spool.js').IdbSpool;
    MemorySpool: typeof import('../../src/memory-spool.js').MemorySpool;
    mk: (level: Api.Level, i: number, session?: string) => import('../../src/entry.js').LogEntry;
  };
  ready: boolean;
}
