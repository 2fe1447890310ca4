import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { TestEdge } from '../helpers/test-edge.js';
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
    assert.match(r.out, /^PASS 429 visible with Retry-After: 1 \(\d+ of 150 pushes answered 429/m);
    assert.match(r.out, /^browser-edge: 4 checks, 4 passed, 0 failed$/m);
    assert.ok(edge.requests.every((q) => q.origin !== 'https://evil.test.internal' || q.method === 'OPTIONS'));
  });

  it('fails (exit 1) when the edge does not expose Retry-After, and when the CA is not the edge\'s', async () => {
    edge.reset();
    edge.exposeRetryAfter = false;
    const view = await edge.startView();
    try {
      const r = await runScript({ ...common, OBS_EDGE_RECEIVED_URL: `http://127.0.0.1:${view}/received` });
      assert.equal(r.code, 1, r.out);
      assert.match(r.out, /^PASS cors-allowed delivered 50\/50 \(by the upstream's record;/m);
      assert.match(r.out, /^FAIL 429 visible, but Retry-After is not readable by the page \(Access-Control-Expose-Headers\)/m);
      assert.match(r.out, /^browser-edge: 4 checks, 3 passed, 1 failed$/m);
    } finally {
      edge.exposeRetryAfter = true;
    }
    const other = makeCert(mkdtempSync(join(dir, 'other-')), 'x', ['x.test.internal']);
    const bad = await runScript({ ...common, OBS_EDGE_CA: other.caPath });
    assert.equal(bad.code, 1, bad.out);
    assert.match(bad.out, /^FAIL tls: the edge's certificate does not verify against /m);
  });
});
