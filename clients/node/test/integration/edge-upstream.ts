/**
 * A TEST UPSTREAM (not Loki) for the edge integration: put it on Loki's
 * backend port behind the real nginx edge where no Loki runs. It accepts
 * Loki JSON pushes (gzip or not), refuses a stream whose `store` label is not
 * the X-Obs-Store the edge set (400, as the hardened edge does), optionally
 * answers 429 above a rate (a token bucket, like nginx's limit_req), keeps
 * every line, and serves them on a second address:
 *
 *   node dist/test/integration/edge-upstream.js --listen 127.0.0.1:3100 --received 127.0.0.1:3199 [--rate 20 --burst 100]
 *   GET http://127.0.0.1:3199/received  ->  {"lines": [...], "requests": N, "refused": N}
 */
import http from 'node:http';
import { gunzipSync } from 'node:zlib';
import { parseHostPort } from '../../src/http';

const args = process.argv.slice(2);
const arg = (name: string, dflt: string | undefined): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const listen = parseHostPort(arg('--listen', '127.0.0.1:3100') as string);
const received = parseHostPort(arg('--received', '127.0.0.1:3199') as string);
const rate = Number(arg('--rate', '0'));
const burst = Number(arg('--burst', '0'));

const lines: string[] = [];
let requests = 0;
let refused = 0;
let tokens = burst;
let last = Date.now();

const push = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    requests += 1;
    if (rate > 0) {
      const now = Date.now();
      tokens = Math.min(burst, tokens + ((now - last) / 1000) * rate);
      last = now;
      if (tokens < 1) {
        refused += 1;
        res.writeHead(429, { 'Retry-After': '1' }).end('429 Too Many Requests (test upstream)');
        return;
      }
      tokens -= 1;
    }
    try {
      const raw = Buffer.concat(chunks);
      const text = req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw).toString() : raw.toString();
      const body = JSON.parse(text) as { streams: { stream: Record<string, string>; values: [string, string][] }[] };
      const store = req.headers['x-obs-store'];
      for (const s of body.streams) {
        if (typeof store === 'string' && s.stream.store !== store) {
          refused += 1;
          res.writeHead(400).end(`store label ${s.stream.store} is not the pushing store ${store} (test upstream)`);
          return;
        }
      }
      for (const s of body.streams) for (const v of s.values) lines.push(v[1]);
      res.writeHead(204).end();
    } catch (err) {
      res.writeHead(400).end(`test upstream: ${(err as Error).message}`);
    }
  });
});
const view = http.createServer((_req, res) => {
  res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ lines, requests, refused }));
});
push.listen(listen.port ?? 3100, listen.host);
view.listen(received.port ?? 3199, received.host, () => process.stdout.write(`edge test upstream: push on ${listen.host}:${listen.port}, received on ${received.host}:${received.port}\n`));
process.on('SIGTERM', () => process.exit(0));
