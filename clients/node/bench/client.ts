/**
 * One bench client run, in a process of its own: `node client.js <ours|winston-loki> <port> <lines> <outageLines>`.
 * Prints one JSON line of figures.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import winston from 'winston';
import type TransportStream from 'winston-transport';
import { LokiTransport } from '../src/transport';

const [kind, portText, linesText, outageText] = process.argv.slice(2) as [string, string, string, string];
const port = Number(portText);
const N = Number(linesText);
const M = Number(outageText);
const base = `http://127.0.0.1:${port}`;
const TOKEN = 'bench-token-not-a-secret-000000000000000000';

async function count(): Promise<{ lines: number; distinct: number; requests: number; maxBody: number }> {
  return (await (await fetch(`${base}/_count`)).json()) as { lines: number; distinct: number; requests: number; maxBody: number };
}
const control = async (what: 'up' | 'down'): Promise<void> => {
  await fetch(`${base}/_${what}`, { method: 'POST' });
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitDistinct(target: number, timeoutMs: number): Promise<number | undefined> {
  const start = Date.now();
  while (Date.now() - start < timeoutMs) {
    if ((await count()).distinct >= target) return Date.now() - start;
    await sleep(20);
  }
  return undefined;
}

async function main(): Promise<void> {
  const spoolDir = mkdtempSync(join(tmpdir(), 'loki-bench-'));
  let transport: TransportStream;
  let ours: LokiTransport | undefined;
  if (kind === 'ours') {
    ours = new LokiTransport({
      bundle: { storeId: 'S001', storeName: undefined, lokiUrl: base, pushUrl: `${base}/loki/api/v1/push`, username: 'S001', password: TOKEN },
      service: 'pos-backend', environment: 'bench', instance: 'bench-1', spoolDir,
      spoolMaxBytes: 2 * 1024 * 1024 * 1024, startupJitterMs: 0, heartbeatIntervalMs: 0, batchWaitMs: 1000,
      backoffMaxMs: 5000, breakerOpenMs: 5000, breakerMaxOpenMs: 5000, onError: () => undefined,
    });
    transport = ours;
  } else {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const WinstonLoki = require('winston-loki') as new (o: Record<string, unknown>) => TransportStream;
    transport = new WinstonLoki({
      host: base, json: true, batching: true, interval: 1, basicAuth: `S001:${TOKEN}`, gracefulShutdown: false,
      labels: { store: 'S001', service: 'pos-backend', environment: 'bench', instance: 'bench-1' }, onConnectionError: () => undefined,
    });
  }
  const logger = winston.createLogger({ level: 'info', format: winston.format.json(), transports: [transport] });
  const log = (run: string, i: number): void => {
    logger.info(`${run} sale ${i} completed`, { order_id: `O-${i}`, terminal_id: `T${i % 8}`, amount: 12.5 });
  };

  // 1. Throughput with the upstream up.
  await control('up');
  const before = await count();
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i += 1) {
    log('a', i);
    if (i % 5000 === 4999) await new Promise((r) => setImmediate(r)); // let the stream plumbing and I/O breathe, as an app does
  }
  const t1 = process.hrtime.bigint();
  const took = await waitDistinct(before.distinct + N, 120_000);
  const cpu = process.cpuUsage(cpu0);
  const intoMs = Number(t1 - t0) / 1e6;
  const deliveredMs = took === undefined ? undefined : Number(process.hrtime.bigint() - t0) / 1e6;

  // 2. An outage: M lines while the upstream answers 503; memory held; then the replay.
  await control('down');
  await sleep(500);
  for (let i = 0; i < M; i += 1) {
    log('b', i);
    if (i % 5000 === 4999) await new Promise((r) => setImmediate(r));
  }
  await sleep(2000);
  (globalThis as { gc?: () => void }).gc?.();
  await sleep(200);
  (globalThis as { gc?: () => void }).gc?.();
  const mem = process.memoryUsage();
  const atUp = await count();
  await control('up');
  const replayStart = Date.now();
  const replayTook = await waitDistinct(atUp.distinct + M, 180_000);
  const after = await count();
  const replayMs = replayTook ?? Date.now() - replayStart;
  const replayed = after.distinct - atUp.distinct;
  const out = {
    kind,
    lines: N,
    intoPerSec: Math.round(N / (intoMs / 1000)),
    deliveredPerSec: deliveredMs === undefined ? null : Math.round(N / (deliveredMs / 1000)),
    cpuMsPer1000: Math.round(((cpu.user + cpu.system) / 1000 / (N / 1000)) * 100) / 100,
    outageLines: M,
    heapMiB: Math.round(mem.heapUsed / 1048576),
    rssMiB: Math.round(mem.rss / 1048576),
    replayPerSec: Math.round(replayed / (replayMs / 1000)),
    replayed,
    replayFinished: replayTook !== undefined,
    replayRequests: after.requests - atUp.requests,
    maxBodyBytes: after.maxBody,
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
  if (ours) await ours.shutdown(2000);
  rmSync(spoolDir, { recursive: true, force: true });
  process.exit(0);
}

void main();
