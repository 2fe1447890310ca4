import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type EdgeEntry, TestEdge } from '../helpers/test-edge.js';
import { makeCert } from '../helpers/tls.js';

const SCRIPT = fileURLToPath(new URL('../integration/browser-edge.js', import.meta.url));
const TOKEN = 'test-token-not-a-secret-0123456789abcdefghijkl';

function runScript(env: Record<string, string>): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [SCRIPT], { env: { ...process.env, ...env }, timeout: 120_000 }, (err, stdout) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, out: stdout });
    });
  });
}

/**
 * `npm run test:browser-edge` (the lead's entry point against the real nginx
 * edge, for Molecule and the release gate's P0-3) run against the HTTPS test
 * edge standing in for it: TLS from a CA file verified and pinned, the
 * bundle's host name mapped to an address, the store limit (20 r/s, burst 100)
 * answering 429, and the arrival checked by query or by the upstream's record.
 * The relay check's NestJS backend runs inside the script's process and pushes
 * to this same test edge (with the CA file and the connect address).
 */
describe('test:browser-edge script (against the HTTPS test edge)', () => {
  let dir: string;
  let edge: TestEdge;
  let common: Record<string, string>;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pos-logger-edge-script-'));
    const cert = makeCert(dir, 'edge', ['obs.test.internal']);
    edge = await new TestEdge({
      key: cert.key, cert: cert.cert, allowedOrigins: ['https://pos.test.internal'], stores: { S001: TOKEN },
      exposeRetryAfter: true, rate: 20, burst: 100, admin: 'admin:test-admin-password',
    }).start();
    writeFileSync(join(dir, 'S001.env'), `# store bundle\nSTORE_ID=S001\nSTORE_NAME="Store 001"\nLOKI_URL=https://obs.test.internal\nLOKI_PUSH_URL=https://obs.test.internal/loki/api/v1/push\nLOKI_USERNAME=S001\nLOKI_PASSWORD=${TOKEN}\n`);
    common = {
      OBS_EDGE_BUNDLE: join(dir, 'S001.env'), OBS_EDGE_CA: cert.caPath, OBS_EDGE_CONNECT: `127.0.0.1:${edge.port}`,
      OBS_EDGE_ALLOWED_ORIGIN: 'https://pos.test.internal', OBS_EDGE_DENIED_ORIGIN: 'https://evil.test.internal', OBS_BROWSER_REPORTS: join(dir, 'reports'),
    };
  });
  after(async () => {
    await edge.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('passes every check, arrival by query; one summary line per check', async () => {
    edge.reset();
    const r = await runScript({ ...common, OBS_EDGE_QUERY_URL: 'https://obs.test.internal/loki/api/v1/query_range', OBS_EDGE_QUERY_USER: 'admin', OBS_EDGE_QUERY_PASSWORD: 'test-admin-password' });
    for (const l of r.out.split('\n').filter((x) => /^(PASS|FAIL) /.test(x))) console.log(`# ${l}`);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /^PASS cors-allowed delivered 50\/50 \(by query;/m);
    assert.match(r.out, /^PASS cors-denied blocked by the browser: Access to fetch at 'https:\/\/obs\.test\.internal\/loki\/api\/v1\/push' from origin 'https:\/\/evil\.test\.internal' has been blocked by CORS policy/m);
    assert.match(r.out, /^PASS 401 visible: status 401 read by the page/m);
    assert.match(r.out, /^PASS 429 visible with Retry-After: 1 \(\d+ of 150 pushes( of burst [2-5])? answered 429/m);
    assert.match(r.out, /^PASS relay delivered 50\/50 \(page -> NestJS relay -> disk spool -> edge, by query; labels store="S001" service="pos-frontend" \(the query's selector\); 1 relay request\(s\) from http:\/\/127\.0\.0\.1:\d+, gzip'd 1, answers \{"200":1\}; the transport's pushes \{"204":\d+\}\)$/m);
    assert.match(r.out, /^browser-edge: 5 checks, 5 passed, 0 failed$/m);
    assert.ok(edge.requests.every((q) => q.origin !== 'https://evil.test.internal' || q.method === 'OPTIONS'));
    assert.match(r.out, /^PASS cors-allowed .*gzip'd 1, answers/m, 'the direct push went gzip\'d through the preflight');
    // What reached the edge from the relay: the backend's pushes (no browser Origin), gzip'd, with the backend's labels.
    const relayed = edge.entries().filter((e) => e.line.includes(' relay seq='));
    assert.equal(relayed.length, 50);
    const labels = (e: EdgeEntry): string => JSON.stringify(Object.entries(e.labels).sort());
    assert.equal(new Set(relayed.map(labels)).size, 1, 'one stream');
    const first = relayed[0] as EdgeEntry;
    assert.deepEqual({ ...first.labels, instance: first.labels.instance?.replace(/-[a-z0-9]+$/, '-<run>') }, { store: 'S001', service: 'pos-frontend', environment: 'browser-edge-test', level: 'info', instance: 'browser-edge-relay-<run>' });
    assert.equal(first.meta?.terminal_id, 'browser-edge');
    assert.match(first.meta?.session ?? '', /^[A-Za-z0-9_-]{16}$/);
    const pushes = edge.requests.filter((q) => q.entries.some((e) => e.line.includes(' relay seq=')));
    assert.ok(pushes.length >= 1 && pushes.every((q) => q.origin === undefined && q.contentEncoding === 'gzip' && q.status === 204), JSON.stringify(pushes.map((q) => [q.origin, q.contentEncoding, q.status])));
  });

  it('fails (exit 1) when the edge does not expose Retry-After, when it refuses the backend\'s pushes (relay), and when the CA is not the edge\'s', async () => {
    edge.reset();
    edge.exposeRetryAfter = false;
    // The backend's pushes carry no Origin (the transport, not a browser): refused for good, as a wrong store label is.
    edge.fault = (q) => (q.origin === undefined ? { status: 400, body: 'stream store=S002 is not the pushing store S001 (test edge)' } : undefined);
    const view = await edge.startView();
    try {
      const r = await runScript({ ...common, OBS_EDGE_RECEIVED_URL: `http://127.0.0.1:${view}/received` });
      for (const l of r.out.split('\n').filter((x) => /^(PASS|FAIL) /.test(x))) console.log(`# ${l}`);
      assert.equal(r.code, 1, r.out);
      assert.match(r.out, /^PASS cors-allowed delivered 50\/50 \(by the upstream's record;/m, 'found in the record with the labels store="S001" service="pos-frontend"');
      assert.match(r.out, /^FAIL 429 visible, but Retry-After is not readable by the page \(Access-Control-Expose-Headers\)/m);
      assert.match(r.out, /^FAIL relay the edge refused the backend's pushes for good: 50 line\(s\) dead-lettered \(acknowledged 0;/m);
      assert.match(r.out, /^browser-edge: 5 checks, 3 passed, 2 failed$/m);
    } finally {
      edge.exposeRetryAfter = true;
      edge.fault = undefined;
    }
    const other = makeCert(mkdtempSync(join(dir, 'other-')), 'x', ['x.test.internal']);
    const bad = await runScript({ ...common, OBS_EDGE_CA: other.caPath });
    assert.equal(bad.code, 1, bad.out);
    assert.match(bad.out, /^FAIL tls: the edge's certificate does not verify against /m);
  });
});
