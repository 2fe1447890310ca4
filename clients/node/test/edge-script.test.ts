import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { makeTestCa } from './helpers/tls';
import { tempDir, TOKEN } from './helpers/setup';

/**
 * The `npm run test:edge` script, run here against a local EDGE STAND-IN
 * (TLS with a throw-away CA, basic auth, a 20 r/s burst-100 limit answering
 * 429, X-Obs-Store) in front of the edge test upstream, so the script the
 * lead runs against the real nginx edge is itself tested.
 */
function freeish(server: http.Server | https.Server): number {
  return (server.address() as AddressInfo).port;
}

function runScript(envs: Record<string, string>): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(__dirname, 'integration', 'edge.js')], { env: { ...process.env, ...envs }, timeout: 120_000 }, (err, stdout) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout });
    });
  });
}

describe('test:edge script (against a local edge stand-in)', () => {
  it('passes through TLS + basic auth + 429s with 0 lost; fails when the record misses lines', async (t) => {
    const { dir, cleanup } = tempDir();
    const tls = makeTestCa(dir);
    if ('skip' in tls) {
      console.log(`SKIP: ${tls.skip}`);
      t.skip(tls.skip);
      cleanup();
      return;
    }
    // The upstream takes fixed ports: pick free ones first.
    const pick = async (): Promise<number> => {
      const s = http.createServer();
      await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
      const p = freeish(s);
      await new Promise<void>((r) => s.close(() => r()));
      return p;
    };
    const pushPort = await pick();
    const viewPort = await pick();
    const upstream = spawn(process.execPath, [join(__dirname, 'integration', 'edge-upstream.js'), '--listen', `127.0.0.1:${pushPort}`, '--received', `127.0.0.1:${viewPort}`], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => upstream.stdout.once('data', () => resolve()));
    let tokens = 100;
    let last = Date.now();
    const edge = https.createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
      const auth = Buffer.from(String(req.headers.authorization ?? '').replace(/^Basic /, ''), 'base64').toString();
      if (auth !== `S001:${TOKEN}`) {
        req.resume();
        res.writeHead(401).end('401 Authorization Required');
        return;
      }
      const now = Date.now();
      tokens = Math.min(100, tokens + ((now - last) / 1000) * 20);
      last = now;
      if (tokens < 1) {
        req.resume();
        res.writeHead(429).end('429 Too Many Requests');
        return;
      }
      tokens -= 1;
      const headers = { ...req.headers, 'x-obs-store': 'S001' };
      delete headers.authorization;
      const fwd = http.request({ host: '127.0.0.1', port: pushPort, path: '/loki/api/v1/push', method: 'POST', headers }, (r) => {
        res.writeHead(r.statusCode ?? 502);
        r.pipe(res);
      });
      req.pipe(fwd);
    });
    await new Promise<void>((r) => edge.listen(0, '127.0.0.1', r));
    const bundle = join(dir, 'S001.env');
    writeFileSync(bundle, `STORE_ID=S001\nSTORE_NAME="Store 001"\nLOKI_URL=https://obs.test.internal:${freeish(edge)}\nLOKI_PUSH_URL=https://obs.test.internal:${freeish(edge)}/loki/api/v1/push\nLOKI_USERNAME=S001\nLOKI_PASSWORD=${TOKEN}\n`);
    try {
      const ok = await runScript({ OBS_EDGE_BUNDLE: bundle, OBS_EDGE_CA: tls.caPath, OBS_EDGE_CONNECT: '127.0.0.1', OBS_EDGE_RECEIVED_URL: `http://127.0.0.1:${viewPort}/received`, OBS_EDGE_LINES: '800', OBS_EDGE_BATCH_LINES: '4' });
      assert.equal(ok.code, 0, ok.out);
      assert.match(ok.out, /edge: sent=800 acknowledged=800 429s=[1-9]\d* retries=\d+ dead_lettered=0 .* lost=0/);
      assert.match(ok.out, /^PASS: /m);
      // A record that lacks the lines: the script must fail.
      const empty = http.createServer((_q, r) => r.end('{"lines":[]}'));
      await new Promise<void>((r) => empty.listen(0, '127.0.0.1', r));
      const bad = await runScript({ OBS_EDGE_BUNDLE: bundle, OBS_EDGE_CA: tls.caPath, OBS_EDGE_CONNECT: '127.0.0.1', OBS_EDGE_RECEIVED_URL: `http://127.0.0.1:${freeish(empty)}/`, OBS_EDGE_LINES: '50', OBS_EDGE_BATCH_LINES: '50', OBS_EDGE_REQUIRE_429: '0' });
      await new Promise<void>((r) => empty.close(() => r()));
      assert.equal(bad.code, 1, bad.out);
      assert.match(bad.out, /lost=50/);
      assert.match(bad.out, /^FAIL: 50 line\(s\) lost/m);
      // Without the CA the edge's certificate is refused: nothing delivered, exit non-zero.
      const noCa = await runScript({ OBS_EDGE_BUNDLE: bundle, OBS_EDGE_CONNECT: '127.0.0.1', OBS_EDGE_LINES: '5', OBS_EDGE_REQUIRE_429: '0', OBS_EDGE_TIMEOUT_S: '3' });
      assert.equal(noCa.code, 1, noCa.out);
      assert.match(noCa.out, /certificate|self-signed|verify/i);
    } finally {
      upstream.kill('SIGTERM');
      await new Promise<void>((r) => edge.close(() => r()));
      cleanup();
    }
  });
});
