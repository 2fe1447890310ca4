import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import type { PosLoggerOptions } from '../../src/index.js';
import type { TestWindow } from '../pages/types.js';
import { type Launched, type PageLog, launch, until, watch } from './browser.js';
import { PageServer } from './page-server.js';
import { TestEdge, type TestEdgeOptions } from './test-edge.js';
import { makeCert } from './tls.js';

/** A made-up test credential (not a secret): store S001 of the test edge. */
export const TOKEN = 'test-token-not-a-secret-0123456789abcdefghijkl';
export const ALLOWED = 'https://pos.test.internal';
export const DENIED = 'https://evil.test.internal';
export const EDGE_HOST = 'edge.test.internal';
export const PUSH_URL = `https://${EDGE_HOST}/loki/api/v1/push`;

export interface DirectFixture {
  edge: TestEdge;
  pages: PageServer;
  launched: Launched;
  close(): Promise<void>;
}

/**
 * The direct target's world: the test page server (https://pos.test.internal
 * allowed, https://evil.test.internal not), the HTTPS test edge
 * (https://edge.test.internal, its own throw-away CA), and a Chromium that
 * resolves those names to them and trusts their keys by SPKI pin.
 */
export async function directFixture(edgeOptions: Partial<TestEdgeOptions> = {}): Promise<DirectFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'pos-logger-test-'));
  const pageCert = makeCert(dir, 'pages', ['pos.test.internal', 'evil.test.internal']);
  const edgeCert = makeCert(dir, 'edge', [EDGE_HOST]);
  const edge = await new TestEdge({ key: edgeCert.key, cert: edgeCert.cert, allowedOrigins: [ALLOWED], stores: { S001: TOKEN }, exposeRetryAfter: true, ...edgeOptions }).start();
  const pages = await new PageServer(pageCert.key, pageCert.cert).start();
  const launched = await launch({
    rules: [`MAP pos.test.internal:443 127.0.0.1:${pages.port}`, `MAP evil.test.internal:443 127.0.0.1:${pages.port}`, `MAP ${EDGE_HOST}:443 127.0.0.1:${edge.port}`],
    spki: [pageCert.spki, edgeCert.spki],
  });
  return {
    edge,
    pages,
    launched,
    close: async () => {
      await launched.close();
      await edge.close();
      await pages.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Logger options for the direct target at the test edge, with test timings. */
export function directConfig(extra: PosLoggerOptions = {}): PosLoggerOptions {
  return {
    target: 'direct', pushUrl: PUSH_URL, store: 'S001', username: 'S001', password: TOKEN, environment: 'test', terminal: 'T1',
    batchWaitMs: 50, backoffBaseMs: 100, backoffMaxMs: 1000, rateLimitFallbackMs: 1000, authRetryMs: 1000, requestTimeoutMs: 5000, console: false,
    ...extra,
  };
}

export interface OpenedPage {
  page: Page;
  log: PageLog;
}

/** Opens the test page at `origin` with the logger made from `config` (and the extra query: log, prefix, go). */
export async function openPage(ctx: BrowserContext, origin: string, config: PosLoggerOptions | undefined, query: Record<string, string> = {}, page?: Page): Promise<OpenedPage> {
  const p = page ?? (await ctx.newPage());
  const log = watch(p);
  const q = new URLSearchParams(query);
  if (config) q.set('config', JSON.stringify(config));
  await p.goto(`${origin}/test/pages/page.html?${q.toString()}`);
  if (!query.go) await p.waitForFunction(() => (window as unknown as TestWindow).ready === true);
  return { page: p, log };
}

/** Logs n lines "<prefix> seq=<i>" in the page, levels cycling info, warn, error, debug (debug is below the default level). */
export async function logLines(page: Page, prefix: string, n: number, from = 0): Promise<void> {
  await page.evaluate(
    ({ prefix, n, from }) => {
      const w = window as unknown as TestWindow;
      for (let i = from; i < from + n; i += 1) {
        const line = `${prefix} seq=${i}`;
        if (i % 10 === 3) w.logger.warn(line, { order_id: `O-${i}` });
        else if (i % 10 === 7) w.logger.error(line, new Error(`failure ${i}`), { order_id: `O-${i}` });
        else w.logger.info(line, { order_id: `O-${i}` });
      }
    },
    { prefix, n, from },
  );
}

/** The seq numbers of lines of `prefix` among `lines` (JSON lines of the logger), in order. */
export function seqs(lines: readonly string[], prefix: string): number[] {
  const out: number[] = [];
  for (const l of lines) {
    const m = /"message":"([^"]*) seq=(\d+)"/.exec(l);
    if (m && m[1] === prefix) out.push(Number(m[2]));
  }
  return out;
}

export async function waitForLines(edge: TestEdge, prefix: string, n: number, timeoutMs: number): Promise<void> {
  await until(() => seqs(edge.lines(), prefix).length >= n, timeoutMs, `${n} lines of ${prefix} at the test edge (have ${seqs(edge.lines(), prefix).length})`);
}
