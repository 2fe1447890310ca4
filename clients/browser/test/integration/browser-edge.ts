/**
 * P0-3 from a real browser, against the REAL nginx edge (`npm run
 * test:browser-edge` in clients/): headless Chromium loads the POS test page
 * from an allowed and from a disallowed origin (served by this script on
 * 127.0.0.1, HTTPS with a throw-away certificate trusted by SPKI pin, the
 * names mapped by --host-resolver-rules) and pushes with the store's
 * credential straight to the edge's /loki/api/v1/push (direct target).
 * Then the relay (issue 18's default target): this script starts a real
 * NestJS app with @obs/loki-transport's module (relay route, a fresh disk
 * spool), configured from the same bundle, CA and connect address; Chromium
 * loads the page from that app's own origin (http://127.0.0.1:<port>, same
 * origin: no CORS, no credential in the page), the page logs, and the
 * transport pushes the lines to the edge. The app is shut down through
 * NestJS's lifecycle (app.close(): the transport's beforeApplicationShutdown).
 *
 * Environment:
 *   OBS_EDGE_BUNDLE            the store bundle (<store id>.env: STORE_ID, LOKI_URL, LOKI_PUSH_URL, LOKI_USERNAME, LOKI_PASSWORD), required;
 *                              also the relay backend's bundlePath
 *   OBS_EDGE_CA                PEM of the deployment's CA (the tls role's ca.crt); the edge's certificate is verified
 *                              against it here, then its key is pinned for Chromium; the relay backend's caFile. Default: the system's roots
 *   OBS_EDGE_CONNECT           address for the bundle's host name, "host" or "host:port" (Chromium --host-resolver-rules,
 *                              the relay backend's connectTo); default: DNS
 *   OBS_EDGE_ALLOWED_ORIGIN    an origin of obs_cors_origins, exactly, e.g. https://pos.test.internal (required)
 *   OBS_EDGE_DENIED_ORIGIN     an origin that is not (default https://denied.test.internal)
 *   OBS_EDGE_QUERY_URL         optional: Loki's query_range through the edge, e.g. https://obs.example/loki/api/v1/query_range
 *   OBS_EDGE_QUERY_USER / OBS_EDGE_QUERY_PASSWORD   its admin credential
 *   OBS_EDGE_RECEIVED_URL      optional: a URL whose body holds the lines a test upstream received (where no Loki runs);
 *                              a JSON record with entries: [{labels, line}] has the labels checked too
 *   OBS_EDGE_LINES             lines the allowed page logs, and the relay page (default 50)
 *   OBS_EDGE_BURST             parallel pushes to meet the store's rate limit (default 150; nginx_push_burst is 100)
 *   OBS_EDGE_REQUIRE_RETRY_AFTER  1 (default): the 429 must show Retry-After to the page (Access-Control-Expose-Headers); 0: report it only
 *   OBS_EDGE_TIMEOUT_S         how long delivery and arrival may take, per check (default 60)
 *   OBS_CHROMIUM               the browser (default /usr/bin/chromium, Debian's)
 *   OBS_BROWSER_REPORTS        where a failing check leaves screenshots and the trace (default <repo>/reports/browser-edge)
 *
 * Lines are labelled environment="browser-edge-test" (direct: by the page; relay: by the backend's transport).
 * Arrival: by query (OBS_EDGE_QUERY_URL: the selector names store, service="pos-frontend" and the environment),
 * else by the upstream's record (OBS_EDGE_RECEIVED_URL; labels checked where the record holds them), else
 * acknowledged by the edge.
 *
 * Prints one line per check, then a summary:
 *   PASS cors-allowed delivered 50/50 (by query; 1 pushes from https://pos.test.internal, gzip'd 1, answers {"204":1})
 *   PASS cors-denied blocked by the browser: Access to fetch at '...' from origin '...' has been blocked by CORS policy: ...
 *   PASS 401 visible: status 401 read by the page (fetch and the logger)
 *   PASS 429 visible with Retry-After: 1 (41 of 150 pushes answered 429; the logger then delivered 20/20)
 *   PASS relay delivered 50/50 (page -> NestJS relay -> disk spool -> edge, by query; labels store="S001" service="pos-frontend"; ...)
 *   browser-edge: 5 checks, 5 passed, 0 failed
 * Exit 0 only when every check passed; 1 when one failed; 2 on a configuration error.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { loadBundle } from '@obs/loki-transport';
import type { TestWindow } from '../pages/types.js';
import { inContext, launch } from '../helpers/browser.js';
import { openPage, seqs } from '../helpers/fixture.js';
import { PageServer } from '../helpers/page-server.js';
import { type Backend, startBackend } from '../helpers/relay-app.js';
import { makeCert, spkiHash } from '../helpers/tls.js';

const env = process.env;
if (!env.OBS_BROWSER_REPORTS) env.OBS_BROWSER_REPORTS = fileURLToPath(new URL('../../../../../reports/browser-edge/', import.meta.url));

function configError(message: string): never {
  console.log(`FAIL config: ${message}`);
  process.exit(2);
}

interface HostPort {
  host: string;
  port: number | undefined;
}

function parseHostPort(s: string): HostPort {
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  if (v6) return { host: v6[1] as string, port: v6[2] ? Number(v6[2]) : undefined };
  const m = /^([^:]+)(?::(\d+))?$/.exec(s);
  if (!m) configError(`OBS_EDGE_CONNECT: expected host or host:port, got ${s}`);
  return { host: m[1] as string, port: m[2] ? Number(m[2]) : undefined };
}

const bracket = (h: string): string => (h.includes(':') ? `[${h}]` : h);

/** Verifies the edge's certificate here (Node, against the CA) and returns the SPKI pins Chromium needs. */
function edgePins(url: URL, connect: HostPort | undefined, ca: Buffer | undefined): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: connect?.host ?? url.hostname, port: connect?.port ?? Number(url.port || 443), servername: url.hostname,
      ...(ca ? { ca } : {}), rejectUnauthorized: true, ALPNProtocols: ['http/1.1'], timeout: 15_000,
    });
    socket.once('secureConnect', () => {
      const pins = [spkiHash(socket.getPeerX509Certificate()?.toString() ?? '')];
      if (ca) pins.push(spkiHash(ca));
      socket.end();
      resolve(pins);
    });
    socket.once('timeout', () => socket.destroy(new Error('TLS connect timed out')));
    socket.once('error', reject);
  });
}

function get(url: string, ca: Buffer | undefined, connect: HostPort | undefined, auth: string | undefined): Promise<string> {
  const u = new URL(url);
  const secure = u.protocol === 'https:';
  let lookup: LookupFunction | undefined;
  if (connect && secure) {
    const family = connect.host.includes(':') ? 6 : 4;
    lookup = ((_h: string, opts: { all?: boolean }, cb: (e: null, a: string | { address: string; family: number }[], f?: number) => void) => {
      if (opts.all) cb(null, [{ address: connect.host, family }]);
      else cb(null, connect.host, family);
    }) as unknown as LookupFunction;
  }
  return new Promise((resolve, reject) => {
    const req = (secure ? https : http).request(
      {
        hostname: u.hostname, port: connect?.port && secure ? connect.port : u.port ? Number(u.port) : undefined, path: `${u.pathname}${u.search}`, method: 'GET',
        ...(lookup ? { lookup } : {}), ...(ca && secure ? { ca } : {}), ...(secure ? { servername: u.hostname } : {}),
        headers: { Host: u.host, ...(auth ? { Authorization: `Basic ${Buffer.from(auth).toString('base64')}` } : {}) }, timeout: 30_000,
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

interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

/** Lines found where the checks look, how, and what was seen of their labels. */
interface Arrival {
  found: number;
  how: string;
  labels: string;
}

async function main(): Promise<void> {
  const bundlePath = env.OBS_EDGE_BUNDLE ?? configError('OBS_EDGE_BUNDLE (the store bundle file) is required');
  let bundle: ReturnType<typeof loadBundle>;
  try {
    bundle = loadBundle(bundlePath);
  } catch (err) {
    configError(`OBS_EDGE_BUNDLE: ${(err as Error).message}`);
  }
  const allowed = env.OBS_EDGE_ALLOWED_ORIGIN ?? configError('OBS_EDGE_ALLOWED_ORIGIN (an origin of obs_cors_origins) is required');
  const denied = env.OBS_EDGE_DENIED_ORIGIN ?? 'https://denied.test.internal';
  const origins = [allowed, denied].map((o) => {
    let u: URL;
    try {
      u = new URL(o);
    } catch {
      configError(`not an origin: ${o}`);
    }
    if (u.origin !== o) configError(`${o} is not an exact origin (scheme://host[:port], no path): ${u.origin}`);
    if (u.protocol !== 'https:') configError(`${o}: the test page is served over HTTPS (the edge's allowed origins are https://...)`);
    return u;
  });
  if (allowed === denied) configError('OBS_EDGE_ALLOWED_ORIGIN and OBS_EDGE_DENIED_ORIGIN must differ');
  const ca = env.OBS_EDGE_CA ? readFileSync(env.OBS_EDGE_CA) : undefined;
  const connect = env.OBS_EDGE_CONNECT ? parseHostPort(env.OBS_EDGE_CONNECT) : undefined;
  const lines = Number(env.OBS_EDGE_LINES ?? 50);
  const burst = Number(env.OBS_EDGE_BURST ?? 150);
  const requireRetryAfter = (env.OBS_EDGE_REQUIRE_RETRY_AFTER ?? '1') !== '0';
  const timeoutMs = Number(env.OBS_EDGE_TIMEOUT_S ?? 60) * 1000;
  const push = new URL(bundle.pushUrl);
  const run = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  const environment = 'browser-edge-test';
  console.log(`browser-edge: store ${bundle.storeId}, ${bundle.pushUrl}${connect ? ` via ${env.OBS_EDGE_CONNECT}` : ''}, CA ${env.OBS_EDGE_CA ?? 'system roots'}, allowed ${allowed}, denied ${denied}, run ${run}`);

  let pins: string[];
  try {
    pins = await edgePins(push, connect, ca);
  } catch (err) {
    console.log(`FAIL tls: the edge's certificate does not verify against ${env.OBS_EDGE_CA ?? 'the system roots'} for ${push.hostname}: ${(err as Error).message}`);
    process.exit(1);
  }
  const dir = mkdtempSync(join(tmpdir(), 'pos-logger-browser-edge-'));
  const pageCert = makeCert(dir, 'pages', [...new Set(origins.map((u) => u.hostname))]);
  const pages = await new PageServer(pageCert.key, pageCert.cert).start();
  const rules = origins.map((u) => `MAP ${bracket(u.hostname)}:${u.port || 443} 127.0.0.1:${pages.port}`);
  if (connect) rules.push(connect.port ? `MAP ${bracket(push.hostname)}:${push.port || 443} ${bracket(connect.host)}:${connect.port}` : `MAP ${bracket(push.hostname)} ${bracket(connect.host)}`);
  const b = await launch({ rules, spki: [...pins, pageCert.spki] });
  const checks: Check[] = [];
  const report = (c: Check): void => {
    checks.push(c);
    console.log(`${c.ok ? 'PASS' : 'FAIL'} ${c.name} ${c.detail}`);
  };
  const config = {
    target: 'direct' as const, pushUrl: bundle.pushUrl, store: bundle.storeId, username: bundle.username, password: bundle.password, environment,
    terminal: 'browser-edge', batchWaitMs: 100, backoffBaseMs: 250, backoffMaxMs: 5000, rateLimitFallbackMs: 2000, authRetryMs: 60_000, console: false, dbName: `obs-pos-logger-edge-${run}`,
  };
  /**
   * Waits until the lines "<prefix> seq=<i>" (i < n) are found where the checks look: by query (the selector names
   * store, service="pos-frontend" and the environment), else in the upstream's record (with each entry's labels when
   * the record holds them), else takes the edge's acknowledgements.
   */
  const arrival = async (prefix: string, n: number, acknowledged: number): Promise<Arrival> => {
    const end = Date.now() + timeoutMs;
    if (env.OBS_EDGE_QUERY_URL) {
      const startNs = `${Date.now() - 10 * 60_000}000000`;
      let found = 0;
      for (;;) {
        const q = new URLSearchParams({ query: `{store="${bundle.storeId}", service="pos-frontend", environment="${environment}"} |= "${prefix} seq="`, start: startNs, end: `${Date.now() + 60_000}000000`, limit: '5000', direction: 'forward' });
        const body = JSON.parse(await get(`${env.OBS_EDGE_QUERY_URL}?${q.toString()}`, ca, connect, `${env.OBS_EDGE_QUERY_USER ?? ''}:${env.OBS_EDGE_QUERY_PASSWORD ?? ''}`)) as { data: { result: { values: [string, string][] }[] } };
        found = new Set(seqs(body.data.result.flatMap((r) => r.values.map((v) => v[1])), prefix)).size;
        if (found >= n || Date.now() > end) break;
        await new Promise((r) => setTimeout(r, 1000));
      }
      return { found, how: 'by query', labels: `store="${bundle.storeId}" service="pos-frontend" (the query's selector)` };
    }
    if (env.OBS_EDGE_RECEIVED_URL) {
      const escaped = prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      const pattern = new RegExp(`${escaped} seq=(\\d+)`);
      let found = 0;
      let labels = '';
      for (;;) {
        const text = await get(env.OBS_EDGE_RECEIVED_URL, ca, connect, undefined);
        let entries: { labels?: Record<string, string>; line?: string }[] | undefined;
        try {
          const record = JSON.parse(text) as { entries?: unknown };
          if (Array.isArray(record.entries)) entries = record.entries as { labels?: Record<string, string>; line?: string }[];
        } catch {
          /* any format holding the lines */
        }
        if (entries) {
          const ours = entries.filter((e) => typeof e.line === 'string' && pattern.test(e.line));
          const right = ours.filter((e) => e.labels?.store === bundle.storeId && e.labels.service === 'pos-frontend');
          found = new Set(right.map((e) => pattern.exec(e.line ?? '')?.[1])).size;
          const wrong = ours.length - right.length;
          labels = wrong === 0 ? `store="${bundle.storeId}" service="pos-frontend" (in the record)` : `${wrong} line(s) in the record with other labels than store="${bundle.storeId}" service="pos-frontend"`;
        } else {
          found = new Set([...text.matchAll(new RegExp(pattern.source, 'g'))].map((m) => m[1])).size;
          labels = `store enforced by the edge; the record holds no labels`;
        }
        if (found >= n || Date.now() > end) break;
        await new Promise((r) => setTimeout(r, 500));
      }
      return { found, how: "by the upstream's record", labels };
    }
    return { found: acknowledged, how: 'acknowledged by the edge (no OBS_EDGE_QUERY_URL or OBS_EDGE_RECEIVED_URL)', labels: 'not checked (acknowledged only)' };
  };

  /** n pushes at once by the page's own fetch (not the logger), each one line: what the page's code sees. */
  const rawPush = (origin: string, password: string, n: number, tag: string) =>
    inContext(b.browser, `browser-edge-${tag}`, async (c) => {
      const { page, log } = await openPage(c, origin, undefined);
      const out = await page.evaluate(
        async ({ url, user, password, n, store, environment, tag }) => {
          const body = (i: number) => JSON.stringify({ streams: [{ stream: { service: 'pos-frontend', store, environment }, values: [[`${Date.now()}000000`, `${tag} i=${i}`]] }] });
          return Promise.all(
            Array.from({ length: n }, async (_, i) => {
              try {
                const r = await fetch(url, { method: 'POST', headers: { Authorization: `Basic ${btoa(`${user}:${password}`)}`, 'Content-Type': 'application/json' }, body: body(i) });
                return { status: r.status, retryAfter: r.headers.get('Retry-After'), error: '' };
              } catch (err) {
                return { status: 0, retryAfter: null, error: String(err) };
              }
            }),
          );
        },
        { url: bundle.pushUrl, user: bundle.username, password, n, store: bundle.storeId, environment, tag: `browser-edge-${run} ${tag}` },
      );
      return { out, console: log.console };
    });

  /**
   * A real NestJS store backend on 127.0.0.1 (plain HTTP: a local origin is a secure context), with
   * LokiTransportModule.forRoot from the same bundle, CA and connect address and a fresh spool; it serves the test
   * page too, so the logger's default target (POST /logs/relay, same origin) needs no CORS and no credential.
   */
  const relayCheck = async (): Promise<Check> => {
    const name = 'relay';
    /** The transport's own reports (onError), each distinct one counted. */
    const problems = new Map<string, number>();
    let backend: Backend;
    try {
      backend = await startBackend({
        bundlePath, ...(env.OBS_EDGE_CA ? { caFile: env.OBS_EDGE_CA } : {}), ...(env.OBS_EDGE_CONNECT ? { connectTo: env.OBS_EDGE_CONNECT } : {}),
        service: 'pos-backend', environment, instance: `browser-edge-relay-${run}`, spoolDir: mkdtempSync(join(tmpdir(), 'pos-logger-browser-edge-relay-')),
        startupJitterMs: 0, batchWaitMs: 100, heartbeatIntervalMs: 0, backoffBaseMs: 250, backoffMaxMs: 5000, authRetryMs: 5000,
        onError: (level, message) => {
          const key = `${level}: ${message}`;
          if (problems.has(key) || problems.size < 5) problems.set(key, (problems.get(key) ?? 0) + 1);
        },
      });
    } catch (err) {
      return { name, ok: false, detail: `the NestJS backend did not start: ${(err as Error).message}` };
    }
    const prefix = `browser-edge-${run} relay`;
    let result: Check;
    try {
      result = await inContext(b.browser, 'browser-edge-relay', async (ctx) => {
        const { page } = await openPage(ctx, backend.url, { terminal: 'browser-edge', batchWaitMs: 100, backoffBaseMs: 250, backoffMaxMs: 5000, console: false, dbName: `${config.dbName}-relay` });
        await page.evaluate(({ n, tag }) => {
          const w = window as unknown as TestWindow;
          for (let i = 0; i < n; i += 1) w.logger.info(`${tag} seq=${i}`);
        }, { n: lines, tag: prefix });
        const taken = await page.evaluate((t) => (window as unknown as TestWindow).logger.flush(t), timeoutMs);
        const s = await page.evaluate(() => (window as unknown as TestWindow).logger.stats());
        const relayed = `${backend.relayed.length} relay request(s) from ${backend.url}, gzip'd ${backend.relayed.filter((r) => r.contentEncoding === 'gzip').length}, answers ${JSON.stringify(s.statuses)}`;
        if (!taken) return { name, ok: false, detail: `the relay took ${s.sent}/${lines} within ${timeoutMs / 1000} s (${relayed}${s.lastError ? `; ${s.lastError}` : ''})` };
        const delivered = await backend.transport.flush(timeoutMs);
        const t = backend.transport.snapshot();
        const said = problems.size > 0 ? `; the transport said: ${[...problems].map(([m, n]) => (n > 1 ? `${m} (${n} times)` : m)).join(' | ')}` : '';
        const dropped = Object.fromEntries(Object.entries(t.dropped).filter(([, v]) => v > 0));
        const pushes = `the transport's pushes ${JSON.stringify(t.requests)}${t.droppedTotal > 0 ? `, dropped ${JSON.stringify(dropped)}` : ''}`;
        if (!delivered) return { name, ok: false, detail: `the transport did not deliver its spool to the edge within ${timeoutMs / 1000} s (acknowledged ${t.sent}; ${relayed}; ${pushes}${said})` };
        if (t.droppedTotal > 0) return { name, ok: false, detail: `the edge refused the backend's pushes for good: ${t.droppedTotal} line(s) dead-lettered (acknowledged ${t.sent}; ${relayed}; ${pushes}${said})` };
        let a: Arrival;
        try {
          a = await arrival(prefix, lines, t.sent);
        } catch (err) {
          return { name, ok: false, detail: `${t.sent}/${lines} acknowledged by the edge, arrival check failed: ${(err as Error).message}` };
        }
        const ok = a.found === lines && s.sent === lines && t.sent >= lines && t.droppedTotal === 0;
        return { name, ok, detail: `delivered ${a.found}/${lines} (page -> NestJS relay -> disk spool -> edge, ${a.how}; labels ${a.labels}; ${relayed}; ${pushes}${ok ? '' : said})` };
      });
    } catch (err) {
      result = { name, ok: false, detail: (err as Error).message };
    }
    try {
      await backend.close();
    } catch (err) {
      result = { name, ok: false, detail: `${result.detail}; the NestJS app did not shut down: ${(err as Error).message}` };
    }
    return result;
  };

  try {
    // 1. Allowed origin: the logger pushes directly; its lines arrive.
    await inContext(b.browser, 'browser-edge-cors-allowed', async (ctx) => {
      const { page } = await openPage(ctx, allowed, config);
      await page.evaluate(({ n, tag }) => {
        const w = window as unknown as TestWindow;
        for (let i = 0; i < n; i += 1) w.logger.info(`${tag} seq=${i}`);
      }, { n: lines, tag: `browser-edge-${run}` });
      const flushed = await page.evaluate((t) => (window as unknown as TestWindow).logger.flush(t), timeoutMs);
      const s = await page.evaluate(() => (window as unknown as TestWindow).logger.stats());
      const d = await page.evaluate(() => (window as unknown as TestWindow).deliveries);
      if (!flushed) {
        report({ name: 'cors-allowed', ok: false, detail: `delivered ${s.sent}/${lines}: not acknowledged within ${timeoutMs / 1000} s (last answer ${String(s.lastStatus)}${s.lastError ? `, ${s.lastError}` : ''}; answers ${JSON.stringify(s.statuses)})` });
        return;
      }
      let a: Arrival;
      try {
        a = await arrival(`browser-edge-${run}`, lines, s.sent);
      } catch (err) {
        report({ name: 'cors-allowed', ok: false, detail: `delivered ${s.sent}/${lines} acknowledged, arrival check failed: ${(err as Error).message}` });
        return;
      }
      const found = a.found;
      const how = a.how;
      const gz = `gzip'd ${d.filter((e) => e.gzip).length}${s.gzipRefused ? ' (the preflight refused Content-Encoding: the rest went uncompressed)' : ''}`;
      report({ name: 'cors-allowed', ok: found === lines && s.sent === lines, detail: `delivered ${found}/${lines} (${how}; ${d.length} pushes from ${allowed}, ${gz}, answers ${JSON.stringify(s.statuses)})` });
    });

    // 2. Disallowed origin: Chromium itself refuses it (preflight without Access-Control-Allow-Origin).
    {
      const r = await rawPush(denied, bundle.password, 1, 'denied');
      const cors = r.console.find((m) => m.includes('blocked by CORS policy'));
      const first = r.out[0];
      const blocked = first !== undefined && first.status === 0 && first.error.startsWith('TypeError') && cors !== undefined;
      report({
        name: 'cors-denied',
        ok: blocked,
        detail: blocked ? `blocked by the browser: ${(cors ?? '').replace(/^error: /, '')}` : `NOT blocked: the page read ${first?.status ? `status ${first.status}` : first?.error}; console: ${r.console.join(' | ') || '(nothing)'}`,
      });
    }

    // 3. A wrong token: 401 with CORS headers, so the page reads the status.
    await inContext(b.browser, 'browser-edge-401', async (ctx) => {
      const raw = await rawPush(allowed, `${bundle.password}-wrong`, 1, 'unauthorized');
      const { page } = await openPage(ctx, allowed, { ...config, password: `${bundle.password}-wrong`, dbName: `${config.dbName}-401` });
      await page.evaluate(() => (window as unknown as TestWindow).logger.warn('browser-edge 401 probe'));
      await page.evaluate(() => (window as unknown as TestWindow).logger.flush(5000));
      const d = await page.evaluate(() => (window as unknown as TestWindow).deliveries);
      const ok = raw.out[0]?.status === 401 && d[0]?.status === 401;
      report({ name: '401', ok, detail: ok ? 'visible: status 401 read by the page (fetch and the logger; the logger pauses, nothing dropped)' : `not visible: fetch read ${raw.out[0]?.status || raw.out[0]?.error}, the logger ${JSON.stringify(d[0] ?? 'no answer')}` });
    });

    // 4. The store's rate limit: 429 with CORS headers and (exposed) Retry-After; the logger recovers.
    await inContext(b.browser, 'browser-edge-429', async (ctx) => {
      const { page } = await openPage(ctx, allowed, { ...config, dbName: `${config.dbName}-429` });
      // On a loaded machine one burst can trickle in slower than the store's
      // bucket refills; back-to-back bursts start from a drained bucket.
      let raw = await rawPush(allowed, bundle.password, burst, 'burst');
      let bursts = 1;
      while (bursts < 5 && !raw.out.some((o) => o.status === 429)) {
        raw = await rawPush(allowed, bundle.password, burst, 'burst');
        bursts += 1;
      }
      const limited = raw.out.filter((o) => o.status === 429);
      const retryAfter = limited.find((o) => o.retryAfter !== null)?.retryAfter ?? null;
      await page.evaluate(({ tag }) => {
        const w = window as unknown as TestWindow;
        for (let i = 0; i < 20; i += 1) w.logger.info(`${tag} after-burst seq=${i}`);
      }, { tag: `browser-edge-${run}` });
      const flushed = await page.evaluate((t) => (window as unknown as TestWindow).logger.flush(t), timeoutMs);
      const s = await page.evaluate(() => (window as unknown as TestWindow).logger.stats());
      const others = [...new Set(raw.out.filter((o) => o.status !== 429 && o.status !== 204).map((o) => o.status || o.error))];
      const counts = `${limited.length} of ${burst} pushes${bursts > 1 ? ` of burst ${bursts}` : ''} answered 429${others.length ? `, others: ${others.join(', ')}` : ''}; the logger then delivered ${s.sent}/20${s.rateLimited ? ` after ${s.rateLimited} 429s` : ''}`;
      if (limited.length === 0) report({ name: '429', ok: false, detail: `not met: ${counts} in 5 back-to-back bursts (raise OBS_EDGE_BURST)` });
      else if (retryAfter === null) report({ name: '429', ok: !requireRetryAfter && flushed, detail: `visible, but Retry-After is not readable by the page (Access-Control-Expose-Headers): ${counts}` });
      else report({ name: '429', ok: flushed && s.sent === 20, detail: `visible with Retry-After: ${retryAfter} (${counts})` });
    });

    // 5. The relay (the logger's default target): page -> NestJS app with @obs/loki-transport (relay route, disk spool) -> edge.
    report(await relayCheck());
  } finally {
    await b.close();
    await pages.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const failed = checks.filter((c) => !c.ok).length;
  console.log(`browser-edge: ${checks.length} checks, ${checks.length - failed} passed, ${failed} failed`);
  process.exit(failed === 0 && checks.length === 5 ? 0 : 1);
}

void main().catch((err: unknown) => {
  console.log(`FAIL browser-edge: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
});
