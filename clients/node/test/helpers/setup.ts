import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LokiTransport } from '../../src/transport';
import type { LokiTransportOptions } from '../../src/options';
import type { TestUpstream } from './upstream';

export const TOKEN = 'test-token-not-a-secret-0123456789abcdefghijkl';

export function tempDir(prefix = 'loki-transport-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface Events {
  errors: string[];
  warnings: string[];
}

/** A transport pointed at a test upstream, with fast test timings (override any). */
export function makeTransport(upstream: TestUpstream, spoolDir: string, overrides: Partial<LokiTransportOptions> = {}): { t: LokiTransport; events: Events } {
  const events: Events = { errors: [], warnings: [] };
  const t = new LokiTransport({
    bundle: { storeId: 'S001', storeName: 'Store 001', lokiUrl: `http://127.0.0.1:${upstream.port}`, pushUrl: upstream.url, username: 'S001', password: TOKEN },
    service: 'pos-backend',
    environment: 'test',
    instance: 'test-1',
    spoolDir,
    startupJitterMs: 0,
    batchWaitMs: 20,
    backoffBaseMs: 20,
    backoffMaxMs: 200,
    breakerOpenMs: 500,
    breakerMaxOpenMs: 2000,
    authRetryMs: 300,
    requestTimeoutMs: 2000,
    heartbeatIntervalMs: 0,
    fsyncIntervalMs: 50,
    onError: (level, message) => (level === 'error' ? events.errors : events.warnings).push(message),
    ...overrides,
  });
  return { t, events };
}

/** Waits (real time) until cond() or timeoutMs. */
export async function waitFor(cond: () => boolean, timeoutMs = 30_000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
