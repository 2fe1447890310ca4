/**
 * The bench's TEST UPSTREAM (not Loki), in a process of its own so its CPU
 * is not counted against the client: accepts Loki JSON pushes (gzip or not),
 * counts lines (and distinct lines), answers 204, or 503 while "down".
 * Control: GET /_count, POST /_down, POST /_up. Prints its port.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

let down = false;
let lines = 0;
let requests = 0;
let maxBody = 0;
const distinct = new Set<string>();
const server = http.createServer((req, res) => {
  if (req.url === '/_count') {
    res.end(JSON.stringify({ lines, requests, distinct: distinct.size, maxBody }));
    return;
  }
  if (req.url === '/_down' || req.url === '/_up') {
    down = req.url === '/_down';
    req.resume();
    res.end('ok');
    return;
  }
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    requests += 1;
    if (down) {
      res.writeHead(503).end('bench upstream down');
      return;
    }
    const raw = Buffer.concat(chunks);
    maxBody = Math.max(maxBody, raw.length);
    const text = req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw).toString() : raw.toString();
    const body = JSON.parse(text) as { streams: { values: [string, string][] }[] };
    for (const s of body.streams) {
      for (const v of s.values) {
        lines += 1;
        distinct.add(v[1]);
      }
    }
    res.writeHead(204).end();
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => process.stdout.write(`${(server.address() as AddressInfo).port}\n`));
process.on('SIGTERM', () => process.exit(0));
