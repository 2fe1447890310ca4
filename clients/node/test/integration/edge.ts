/**
 * Integration through the REAL nginx edge (`npm run test:edge`): pushes with a
 * store bundle over TLS verified against the deployment's CA, hard enough to
 * meet the store's rate limit (429), and checks that no line was lost.
 *
 * Environment:
 *   OBS_EDGE_BUNDLE          the store bundle (<store id>.env), required
 *   OBS_EDGE_CA              PEM of the CA to verify the edge with (the tls role's ca.crt); default: Node's roots
 *   OBS_EDGE_CONNECT         address for the bundle's host name, "host" or "host:port" (like curl --resolve)
 *   OBS_EDGE_RECEIVED_URL    optional: a URL whose body holds what the upstream received (any format holding the lines)
 *   OBS_EDGE_QUERY_URL       optional: Loki query_range through the edge, e.g. https://obs.example/loki/api/v1/query_range
 *   OBS_EDGE_QUERY_USER / OBS_EDGE_QUERY_PASSWORD   its admin credential
 *   OBS_EDGE_LINES           lines to send (default 2000)
 *   OBS_EDGE_BATCH_LINES     lines per push (default 5: many small pushes meet the limit)
 *   OBS_EDGE_REQUIRE_429     1 (default): fail unless a 429 was seen; 0: do not require one
 *   OBS_EDGE_TIMEOUT_S       how long delivery may take (default 240)
 * Exit 0 only when every line was acknowledged, none dead-lettered, and (with a
 * received URL or a query) every line found exactly where it was sent.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadBundle } from '../../src/bundle';
import { parseHostPort } from '../../src/http';
import { LokiTransport } from '../../src/transport';

const env = process.env;
function fail(message: string): never {
  console.log(`FAIL: ${message}`);
  process.exit(2);
}

function get(url: string, ca: Buffer | undefined, connect: string | undefined, auth: string | undefined): Promise<string> {
  const u = new URL(url);
  const mod = u.protocol === 'https:' ? https : http;
  let lookup: LookupFunction | undefined;
  let port: number | undefined;
  if (connect && u.protocol === 'https:') {
    const hp = parseHostPort(connect);
    port = hp.port;
    lookup = (_h, opts, cb) => {
      if ((opts as { all?: boolean }).all) (cb as unknown as (e: null, a: { address: string; family: number }[]) => void)(null, [{ address: hp.host, family: hp.host.includes(':') ? 6 : 4 }]);
      else cb(null, hp.host, hp.host.includes(':') ? 6 : 4);
    };
  }
  return new Promise((resolve, reject) => {
    const req = mod.request(
      {
        hostname: u.hostname, port: port ?? (u.port ? Number(u.port) : undefined), path: `${u.pathname}${u.search}`, method: 'GET',
        ...(lookup ? { lookup } : {}), ...(ca ? { ca } : {}), ...(u.protocol === 'https:' ? { servername: u.hostname } : {}),
        headers: { Host: u.host, ...(auth ? { Authorization: `Basic ${Buffer.from(auth).toString('base64')}` } : {}) },
        timeout: 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => (res.statusCode === 200 ? resolve(Buffer.concat(chunks).toString()) : reject(new Error(`${url}: HTTP ${res.statusCode} ${Buffer.concat(chunks).toString().slice(0, 200)}`))));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${url}: timeout`)));
    req.on('error', reject);
    req.end();
  });
}

async function main(): Promise<void> {
  const bundlePath = env.OBS_EDGE_BUNDLE ?? fail('OBS_EDGE_BUNDLE (the store bundle file) is required');
  const caPath = env.OBS_EDGE_CA;
  const ca = caPath ? readFileSync(caPath) : undefined;
  const connect = env.OBS_EDGE_CONNECT || undefined;
  const lines = Number(env.OBS_EDGE_LINES ?? 2000);
  const batchLines = Number(env.OBS_EDGE_BATCH_LINES ?? 5);
  const require429 = (env.OBS_EDGE_REQUIRE_429 ?? '1') !== '0';
  const timeoutMs = Number(env.OBS_EDGE_TIMEOUT_S ?? 240) * 1000;
  const bundle = loadBundle(bundlePath);
  const run = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  const instance = `edge-test-${run}`;
  const spoolDir = mkdtempSync(join(tmpdir(), 'obs-edge-test-'));
  const problems: string[] = [];
  const t = new LokiTransport({
    bundlePath, ...(caPath ? { caFile: caPath } : {}), ...(connect ? { connectTo: connect } : {}),
    service: 'edge-integration-test', environment: 'test', instance, spoolDir,
    batchMaxLines: batchLines, batchWaitMs: 0, startupJitterMs: 0, heartbeatIntervalMs: 0,
    backoffBaseMs: 250, backoffMaxMs: 5000, breakerOpenMs: 2000, breakerMaxOpenMs: 10000, requestTimeoutMs: 15000, authRetryMs: 5000,
    onError: (level, message) => {
      if (problems.length < 20) problems.push(`${level}: ${message}`);
    },
  });
  console.log(`edge: store ${bundle.storeId}, ${bundle.pushUrl}${connect ? ` via ${connect}` : ''}, CA ${caPath ?? "Node's roots"}, ${lines} lines in pushes of ${batchLines}, instance ${instance}`);
  const start = Date.now();
  const startNs = BigInt(start - 60_000) * 1_000_000n;
  for (let i = 0; i < lines; i += 1) t.append({ level: i % 10 === 0 ? 'warn' : 'info', line: `edge-${run} seq=${i}` });
  const delivered = await t.flush(timeoutMs);
  const s = t.snapshot();
  await t.shutdown(1000);
  rmSync(spoolDir, { recursive: true, force: true });
  const seen429 = s.requests['429'] ?? 0;
  const acked = s.sent;
  const lostClient = lines - acked;
  const summary: string[] = [
    `sent=${lines}`, `acknowledged=${acked}`, `429s=${seen429}`, `retries=${s.retriesTotal}`,
    `dead_lettered=${s.dropped.rejected + s.dropped.too_large}`, `requests=${JSON.stringify(s.requests)}`, `seconds=${((Date.now() - start) / 1000).toFixed(1)}`,
  ];
  let lost = lostClient;
  let checked = 'acknowledgements only (no OBS_EDGE_RECEIVED_URL or OBS_EDGE_QUERY_URL)';
  const countFound = (text: string): { found: Set<number>; dup: number } => {
    const found = new Set<number>();
    let dup = 0;
    for (const m of text.matchAll(new RegExp(`edge-${run} seq=(\\d+)`, 'g'))) {
      const n = Number(m[1]);
      if (found.has(n)) dup += 1;
      found.add(n);
    }
    return { found, dup };
  };
  try {
    if (env.OBS_EDGE_QUERY_URL) {
      await new Promise((r) => setTimeout(r, 2000));
      const found = new Set<number>();
      let from = startNs;
      const endNs = BigInt(Date.now() + 60_000) * 1_000_000n;
      for (let page = 0; page < 100; page += 1) {
        const q = new URLSearchParams({ query: `{store="${bundle.storeId}", instance="${instance}"}`, start: from.toString(), end: endNs.toString(), limit: '5000', direction: 'forward' });
        const body = JSON.parse(await get(`${env.OBS_EDGE_QUERY_URL}?${q}`, ca, connect, `${env.OBS_EDGE_QUERY_USER ?? ''}:${env.OBS_EDGE_QUERY_PASSWORD ?? ''}`)) as { data: { result: { values: [string, string][] }[] } };
        const values = body.data.result.flatMap((r) => r.values);
        for (const [, line] of values) for (const n of countFound(line).found) found.add(n);
        if (values.length < 5000) break;
        from = values.reduce((m, [ts]) => (BigInt(ts) > m ? BigInt(ts) : m), from) + 1n;
      }
      lost = lines - found.size;
      checked = `by query (${env.OBS_EDGE_QUERY_URL}): ${found.size} of ${lines} found`;
    } else if (env.OBS_EDGE_RECEIVED_URL) {
      const { found, dup } = countFound(await get(env.OBS_EDGE_RECEIVED_URL, ca, connect, undefined));
      lost = lines - found.size;
      checked = `by the upstream's record (${env.OBS_EDGE_RECEIVED_URL}): ${found.size} of ${lines} received, ${dup} resent copies (Loki would collapse them)`;
    }
  } catch (err) {
    problems.push(`loss check failed: ${(err as Error).message}`);
    lost = Math.max(lost, 1);
  }
  summary.push(`lost=${lost}`);
  console.log(`edge: ${summary.join(' ')}`);
  console.log(`edge: loss checked ${checked}`);
  for (const p of problems.slice(0, 10)) console.log(`edge: transport said: ${p}`);
  const failures: string[] = [];
  if (!delivered) failures.push(`not delivered within ${timeoutMs / 1000} s (is TLS verification failing? see above)`);
  if (lost !== 0 || lostClient !== 0) failures.push(`${Math.max(lost, lostClient)} line(s) lost`);
  if (require429 && seen429 === 0) failures.push('no 429 seen: the store limit was not reached (raise OBS_EDGE_LINES, lower OBS_EDGE_BATCH_LINES, or OBS_EDGE_REQUIRE_429=0)');
  if (failures.length > 0) {
    console.log(`FAIL: ${failures.join('; ')}`);
    process.exit(1);
  }
  console.log(`PASS: ${lines} lines through the edge, ${seen429} 429s met and recovered from, 0 lost`);
}

void main().catch((err: unknown) => fail((err as Error).stack ?? String(err)));
