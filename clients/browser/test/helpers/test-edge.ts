import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { gunzipSync } from 'node:zlib';

/**
 * The TEST EDGE: a local HTTPS server (throw-away CA) with the push route of
 * the nginx edge (roles/nginx/templates/nginx.conf.j2), not Loki:
 *
 * - `POST /loki/api/v1/push` only; every answer of the route carries the CORS
 *   headers the way nginx adds them (`always`): Access-Control-Allow-Origin
 *   only for an exactly matching allowed origin, Allow-Methods "POST, OPTIONS",
 *   Allow-Headers "Authorization, Content-Type, Content-Encoding" (`allowHeaders`
 *   plays an older edge), Max-Age, Vary: Origin, and (unless `exposeRetryAfter`
 *   is false) Access-Control-Expose-Headers: Retry-After;
 * - OPTIONS (preflight) is answered 204 before authentication;
 * - the per-store limit (a token bucket, as limit_req, when `rate` is set)
 *   answers 429 + Retry-After; then basic auth: 401 + WWW-Authenticate;
 * - a JSON body only (gzip Content-Encoding allowed), each stream's `store`
 *   label must be the credential's store, else 400; over 4 MiB 413;
 * - entries are kept as Loki keeps them (one per stream + timestamp + line:
 *   a resend collapses; `resent` counts the copies).
 *
 * `fault` scripts other answers (429, 401, 5xx) for the tests.
 */
export interface EdgeEntry {
  labels: Record<string, string>;
  ts: string;
  line: string;
  meta: Record<string, string> | undefined;
}

export interface EdgeRequest {
  n: number;
  method: string;
  origin: string | undefined;
  status: number;
  entries: EdgeEntry[];
  contentEncoding: string | undefined;
  /** Body bytes as sent, and their SHA-256 (a browser can put the same request on the wire twice). */
  bytes: number;
  hash: string;
  /** When the request arrived, when its answer was sent. */
  at: number;
  end: number;
}

/**
 * Most body bytes in flight at once (arrival to answer), a body the browser
 * put on the wire twice counted once: what the keepalive budget limits.
 */
export function peakInFlight(requests: readonly EdgeRequest[]): number {
  const seen = new Set<string>();
  const events: [number, number][] = [];
  for (const r of requests) {
    if (r.method !== 'POST' || seen.has(r.hash)) continue;
    seen.add(r.hash);
    events.push([r.at, r.bytes], [r.end, -r.bytes]);
  }
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let now = 0;
  let peak = 0;
  for (const [, d] of events) {
    now += d;
    peak = Math.max(peak, now);
  }
  return peak;
}

export interface EdgeFault {
  status: number;
  headers?: Record<string, string>;
  body?: string;
}

export interface TestEdgeOptions {
  key: Buffer;
  cert: Buffer;
  allowedOrigins: string[];
  /** store id -> token */
  stores: Record<string, string>;
  /** Access-Control-Expose-Headers: Retry-After (default true, as the edge). */
  exposeRetryAfter?: boolean;
  /** Access-Control-Allow-Headers (default "Authorization, Content-Type, Content-Encoding", as the edge). */
  allowHeaders?: string;
  /** Per-credential limit (requests/s) and burst; 0: none. */
  rate?: number;
  burst?: number;
  retryAfterSeconds?: number;
  /** "user:password" of the admin route GET /loki/api/v1/query_range (a stand-in: the kept lines holding the query's `|= "..."` text). */
  admin?: string;
}

export class TestEdge {
  readonly requests: EdgeRequest[] = [];
  preflights = 0;
  resent = 0;
  /** Called for each authenticated POST; a fault replaces the normal answer. */
  fault: ((req: EdgeRequest) => EdgeFault | undefined) | undefined;
  private readonly kept = new Map<string, Map<string, Set<string>>>();
  private readonly order: EdgeEntry[] = [];
  private server: https.Server | undefined;
  private view: http.Server | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  port = 0;
  viewPort = 0;

  constructor(private readonly o: TestEdgeOptions) {}

  set exposeRetryAfter(v: boolean) {
    this.o.exposeRetryAfter = v;
  }

  /** undefined: the edge's own list. */
  set allowHeaders(v: string | undefined) {
    this.o.allowHeaders = v;
  }

  async start(): Promise<this> {
    this.server = https.createServer({ key: this.o.key, cert: this.o.cert }, (req, res) => this.onRequest(req, res));
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  /**
   * A plain-HTTP view of what was kept (`GET /received` -> {"lines": [...], "entries": [{labels, line}], "requests": n}):
   * the lines like the transport's edge test upstream, and each entry's labels.
   */
  async startView(): Promise<number> {
    this.view = http.createServer((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ lines: this.lines(), entries: this.order.map((e) => ({ labels: e.labels, line: e.line })), requests: this.requests.length }));
    });
    await new Promise<void>((resolve) => this.view?.listen(0, '127.0.0.1', resolve));
    this.viewPort = (this.view.address() as AddressInfo).port;
    return this.viewPort;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    await new Promise<void>((resolve) => (this.view ? this.view.close(() => resolve()) : resolve()));
  }

  /** Kept entries in arrival order. */
  entries(): EdgeEntry[] {
    return [...this.order];
  }

  lines(): string[] {
    return this.order.map((e) => e.line);
  }

  reset(): void {
    this.requests.length = 0;
    this.order.length = 0;
    this.kept.clear();
    this.preflights = 0;
    this.resent = 0;
    this.fault = undefined;
    this.buckets.clear();
  }

  private cors(origin: string | undefined): Record<string, string> {
    const h: Record<string, string> = {
      'Access-Control-Allow-Methods': 'POST, OPTIONS',
      'Access-Control-Allow-Headers': this.o.allowHeaders ?? 'Authorization, Content-Type, Content-Encoding',
      'Access-Control-Max-Age': '7200',
      Vary: 'Origin',
    };
    if (origin !== undefined && this.o.allowedOrigins.includes(origin)) h['Access-Control-Allow-Origin'] = origin;
    if (this.o.exposeRetryAfter !== false) h['Access-Control-Expose-Headers'] = 'Retry-After';
    return h;
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'https://edge');
    const origin = typeof req.headers.origin === 'string' ? req.headers.origin : undefined;
    const chunks: Buffer[] = [];
    const arrived = Date.now();
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (url.pathname === '/loki/api/v1/query_range' && req.method === 'GET' && this.o.admin) {
        const given = Buffer.from(String(req.headers.authorization ?? '').replace(/^Basic /, ''), 'base64').toString();
        if (given !== this.o.admin) {
          res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="obs admin"' }).end('401 Authorization Required (test edge)');
          return;
        }
        const needle = /\|= "([^"]*)"/.exec(url.searchParams.get('query') ?? '')?.[1] ?? '';
        const values = this.order.filter((e) => e.line.includes(needle)).map((e) => [e.ts, e.line]);
        res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ status: 'success', data: { resultType: 'streams', result: [{ stream: {}, values }] } }));
        return;
      }
      if (url.pathname !== '/loki/api/v1/push') {
        res.writeHead(404, { 'Content-Type': 'text/plain' }).end('404 Not Found (test edge)');
        return;
      }
      const cors = this.cors(origin);
      if (req.method === 'OPTIONS') {
        this.preflights += 1;
        res.writeHead(204, cors).end();
        return;
      }
      const record: EdgeRequest = {
        n: this.requests.length + 1, method: req.method ?? '', origin, status: 0, entries: [],
        contentEncoding: typeof req.headers['content-encoding'] === 'string' ? req.headers['content-encoding'] : undefined,
        bytes: chunks.reduce((n, c) => n + c.length, 0), hash: createHash('sha256').update(Buffer.concat(chunks)).digest('hex'), at: arrived, end: arrived,
      };
      this.requests.push(record);
      const answer = (status: number, body = '', headers: Record<string, string> = {}): void => {
        record.status = status;
        record.end = Date.now();
        res.writeHead(status, { 'Content-Type': 'text/plain', ...cors, ...headers }).end(body);
      };
      if (req.method !== 'POST') return answer(405, '405 Not Allowed (test edge)');
      const auth = String(req.headers.authorization ?? '');
      if (this.o.rate && auth !== '' && !this.take(auth)) {
        return answer(429, '429 Too Many Requests (test edge)', { 'Retry-After': String(this.o.retryAfterSeconds ?? 1) });
      }
      const [user, token] = Buffer.from(auth.replace(/^Basic /, ''), 'base64').toString().split(':');
      if (!auth.startsWith('Basic ') || user === undefined || this.o.stores[user] === undefined || this.o.stores[user] !== token) {
        return answer(401, '401 Authorization Required (test edge)', { 'WWW-Authenticate': 'Basic realm="obs push"' });
      }
      const f = this.fault?.(record);
      if (f) return answer(f.status, f.body ?? '', f.headers ?? {});
      const raw = Buffer.concat(chunks);
      if (raw.length > 4 * 1024 * 1024) return answer(413, '413 Request Entity Too Large (test edge)');
      const type = String(req.headers['content-type'] ?? '').split(';')[0]?.trim();
      if (type !== 'application/json') return answer(400, `unsupported Content-Type ${type} (test edge: JSON pushes only)`);
      let entries: EdgeEntry[];
      try {
        const text = record.contentEncoding === 'gzip' ? gunzipSync(raw).toString('utf8') : raw.toString('utf8');
        const body = JSON.parse(text) as { streams: { stream: Record<string, string>; values: [string, string, Record<string, string>?][] }[] };
        entries = [];
        for (const s of body.streams) {
          if (s.stream.store !== user) return answer(400, `stream store=${s.stream.store} is not the pushing store ${user} (test edge)`);
          for (const v of s.values) entries.push({ labels: s.stream, ts: v[0], line: v[1], meta: v[2] });
        }
      } catch (err) {
        return answer(400, `cannot decode push: ${(err as Error).message} (test edge)`);
      }
      record.entries = entries;
      this.keep(entries);
      answer(204);
    });
  }

  private take(key: string): boolean {
    const rate = this.o.rate ?? 0;
    const burst = this.o.burst ?? rate;
    const now = Date.now();
    const b = this.buckets.get(key) ?? { tokens: burst, at: now };
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * rate);
    b.at = now;
    this.buckets.set(key, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  private keep(entries: EdgeEntry[]): void {
    for (const e of entries) {
      const key = JSON.stringify(Object.entries(e.labels).sort());
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
      if (lines.has(e.line)) {
        this.resent += 1;
        continue;
      }
      lines.add(e.line);
      this.order.push(e);
    }
  }
}
