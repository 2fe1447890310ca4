import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

/**
 * A local HTTP TEST UPSTREAM standing in for the edge in front of Loki in the
 * tests. It is not Loki: it decodes the push (gzip JSON), keeps entries the
 * way Loki does (one per stream + timestamp + line: a resend collapses), and
 * answers what the test scripts. Faults: status codes with bodies (e.g. the
 * captured Loki 3.4.2 bodies), Retry-After, hanging sockets, resets.
 */
export interface PushedEntry {
  labels: Record<string, string>;
  ts: string;
  line: string;
  meta: Record<string, string> | undefined;
}

export interface PushRequest {
  n: number;
  headers: http.IncomingHttpHeaders;
  entries: PushedEntry[];
  bodyBytes: number;
  at: number;
}

export type Reply =
  | { status: number; body?: string; headers?: Record<string, string>; /** entries to keep; default all for 2xx, none otherwise */ store?: PushedEntry[] }
  | 'hang'
  | 'reset';

export class TestUpstream {
  readonly requests: PushRequest[] = [];
  /** stream key -> ts -> line (Loki keeps one entry per stream, timestamp and line). */
  private readonly kept = new Map<string, Map<string, Set<string>>>();
  duplicates = 0;
  handler: (req: PushRequest) => Reply = () => ({ status: 204 });
  private server: http.Server | undefined;
  private readonly sockets = new Set<import('node:net').Socket>();
  port = 0;

  async start(port = 0): Promise<this> {
    this.server = http.createServer((req, res) => this.onRequest(req, res));
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve) => this.server?.listen(port, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/loki/api/v1/push`;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server = undefined;
  }

  /** Every kept entry, in arrival order per stream. */
  entries(): PushedEntry[] {
    const out: PushedEntry[] = [];
    for (const [key, byTs] of this.kept) {
      const labels = JSON.parse(key) as Record<string, string>;
      for (const [ts, lines] of byTs) for (const line of lines) out.push({ labels, ts, line, meta: undefined });
    }
    return out;
  }

  lines(): string[] {
    return this.entries().map((e) => e.line);
  }

  keep(entries: PushedEntry[]): void {
    for (const e of entries) {
      const key = JSON.stringify(sortKeys(e.labels));
      let byTs = this.kept.get(key);
      if (!byTs) {
        byTs = new Map();
        this.kept.set(key, byTs);
      }
      let lines = byTs.get(e.ts);
      if (!lines) {
        lines = new Set();
        byTs.set(e.ts, lines);
      }
      if (lines.has(e.line)) this.duplicates += 1;
      else lines.add(e.line);
    }
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let entries: PushedEntry[] = [];
      const raw = Buffer.concat(chunks);
      try {
        const text = req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw).toString('utf8') : raw.toString('utf8');
        entries = decodePush(text);
      } catch (err) {
        res.writeHead(400).end(`test upstream: cannot decode push: ${(err as Error).message}`);
        return;
      }
      const request: PushRequest = { n: this.requests.length + 1, headers: req.headers, entries, bodyBytes: raw.length, at: Date.now() };
      this.requests.push(request);
      const reply = this.handler(request);
      if (reply === 'hang') return; // never answer; the socket stays open
      if (reply === 'reset') {
        req.socket.destroy();
        return;
      }
      const keep = reply.store ?? (reply.status >= 200 && reply.status < 300 ? entries : []);
      this.keep(keep);
      res.writeHead(reply.status, { Date: new Date().toUTCString(), ...reply.headers });
      res.end(reply.body ?? '');
    });
  }
}

export function decodePush(text: string): PushedEntry[] {
  const body = JSON.parse(text) as { streams: { stream: Record<string, string>; values: [string, string, Record<string, string>?][] }[] };
  const out: PushedEntry[] = [];
  for (const s of body.streams) for (const v of s.values) out.push({ labels: s.stream, ts: v[0], line: v[1], meta: v[2] });
  return out;
}

function sortKeys(o: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : 1)));
}

/** Kept entries of one instance, without the transport's own lines (heartbeats, transport events). */
export function appEntries(up: TestUpstream, instance: string): PushedEntry[] {
  return up.entries().filter((e) => e.labels.instance === instance && !e.line.startsWith('{"type":'));
}
