import type { IncomingMessage, ServerResponse } from 'node:http';
import { gunzipSync } from 'node:zlib';
import type { LokiTransport } from './transport';

/**
 * The relay route for the stores' browser frontends: a same-origin endpoint on
 * the store backend that takes the browser's batches and puts them into this
 * transport's disk spool, so browser lines get the same delivery (disk,
 * retries, breaker) and never carry a Loki credential. Wire format: see the
 * package README ("Relay route").
 */
export interface RelayOptions {
  /** `service` label of relayed lines unless the batch names one of `services`. Default "pos-frontend". */
  service?: string;
  /** Services a batch may name. Default: [service]. */
  services?: string[];
  /** Largest request body, bytes (after gunzip). Default 65536 (the browser's keepalive/sendBeacon limit). */
  maxBodyBytes?: number;
  /** Most entries per batch. Default 500. */
  maxEntries?: number;
  /** Longest line, bytes; longer lines are cut and marked `truncated=1`. Default 16384. */
  maxLineBytes?: number;
  /** Browser clock this far from the backend's (sentAt) is corrected. Default 10000 ms. */
  maxClockSkewMs?: number;
  /** Entries older than this on arrival (after correction) get the arrival time (original kept as metadata client_ts). Default 1800000 (30 min), inside Loki's 1 h out-of-order window. */
  maxEntryAgeMs?: number;
  /** Batches per second per client address. Default 20 (burst 40). */
  ratePerSecond?: number;
  /** (session, batch) pairs remembered so a resent batch is not spooled twice. Default 10000. */
  dedupWindow?: number;
  /** Metadata keys a browser may send. Default: terminal_id, user_id, order_id, trace_id, span_id, request_id, page, session. */
  metadataKeys?: string[];
}

export interface RelayReply {
  status: number;
  headers: Record<string, string>;
  body: Record<string, unknown>;
}

interface Bucket {
  tokens: number;
  at: number;
}

const LEVELS = new Set(['error', 'warn', 'info', 'debug']);
const SESSION = /^[A-Za-z0-9_-]{8,64}$/;
const DEFAULT_META = ['terminal_id', 'user_id', 'order_id', 'trace_id', 'span_id', 'request_id', 'page', 'session'];

export class BrowserRelay {
  private readonly o: Required<RelayOptions>;
  private readonly seen = new Map<string, true>();
  private readonly buckets = new Map<string, Bucket>();
  private readonly meta: ReadonlySet<string>;

  constructor(private readonly transport: LokiTransport, options: RelayOptions = {}) {
    const service = options.service ?? 'pos-frontend';
    this.o = {
      service,
      services: options.services ?? [service],
      maxBodyBytes: options.maxBodyBytes ?? 65536,
      maxEntries: options.maxEntries ?? 500,
      maxLineBytes: options.maxLineBytes ?? 16384,
      maxClockSkewMs: options.maxClockSkewMs ?? 10000,
      maxEntryAgeMs: options.maxEntryAgeMs ?? 30 * 60 * 1000,
      ratePerSecond: options.ratePerSecond ?? 20,
      dedupWindow: options.dedupWindow ?? 10000,
      metadataKeys: options.metadataKeys ?? DEFAULT_META,
    };
    this.meta = new Set(this.o.metadataKeys);
  }

  get maxBodyBytes(): number {
    return this.o.maxBodyBytes;
  }

  /** Handles one parsed batch. `client` keys the rate limit (the peer address). */
  accept(body: unknown, client = 'unknown', nowMs = Date.now()): RelayReply {
    if (!this.allow(client, nowMs)) {
      return reply(429, { error: 'rate limited' }, { 'Retry-After': '2' });
    }
    if (this.transport.failingClosed) {
      // The disk refuses writes: the browser keeps its lines and comes back.
      this.transport.metrics.relayRefused += countEntries(body);
      return reply(503, { error: 'spool unavailable' }, { 'Retry-After': '30' });
    }
    const batch = validate(body, this.o.maxEntries);
    if (typeof batch === 'string') return reply(400, { error: batch });
    const service = batch.service ?? this.o.service;
    if (!this.o.services.includes(service)) return reply(400, { error: `service ${JSON.stringify(service)} is not relayed here` });
    const key = `${batch.session}:${batch.batch}`;
    if (this.seen.has(key)) return reply(200, { accepted: 0, dropped: 0, duplicate: true });

    // Browser clock correction: shift the whole batch by (our time - its sentAt) when they differ by more than maxClockSkewMs.
    const offsetMs = Math.abs(nowMs - batch.sentAt) > this.o.maxClockSkewMs ? Math.round(nowMs - batch.sentAt) : 0;
    const nowNs = BigInt(Math.floor(nowMs)) * 1_000_000n;
    const oldest = nowNs - BigInt(this.o.maxEntryAgeMs) * 1_000_000n;
    const newest = nowNs + BigInt(this.o.maxClockSkewMs) * 1_000_000n;
    let accepted = 0;
    let dropped = 0;
    for (const e of batch.entries) {
      const meta: Record<string, string> = { session: batch.session };
      if (e.meta) for (const [k, v] of Object.entries(e.meta)) if (this.meta.has(k)) meta[k] = v;
      let ts = e.ts + BigInt(offsetMs) * 1_000_000n;
      if (offsetMs !== 0) meta.client_clock_offset_ms = String(offsetMs);
      if (ts < oldest || ts > newest) {
        meta.client_ts = e.ts.toString();
        ts = this.transport.now();
      }
      let line = e.line;
      if (Buffer.byteLength(line) > this.o.maxLineBytes) {
        line = Buffer.from(line).subarray(0, this.o.maxLineBytes).toString('utf8');
        meta.truncated = '1';
      }
      // Browser input is untrusted: for the byte cap its lines are at most info class,
      // so a flood of "error" lines cannot push the spool past its cap.
      const priority = Math.min(this.transport.options.levelPriority[e.level] ?? 1, 1) as 0 | 1;
      const result = this.transport.append({ level: e.level, line, ts, meta, override: { service }, priority });
      if (result === 'ok') accepted += 1;
      else dropped += 1;
    }
    // Make it durable now (page cache: survives the backend's kill -9) before answering.
    const failed = this.transport.flushToDisk();
    if (failed > 0 || this.transport.failingClosed) {
      this.transport.metrics.relayRefused += batch.entries.length;
      return reply(503, { error: 'spool write failed' }, { 'Retry-After': '30' });
    }
    this.remember(key);
    this.transport.metrics.relayAccepted += accepted;
    return reply(200, { accepted, dropped, duplicate: false });
  }

  /** Reads, size-checks and parses a raw request, then `accept`s it. */
  async handleRaw(req: IncomingMessage, preParsed?: unknown): Promise<RelayReply> {
    const client = req.socket?.remoteAddress ?? 'unknown';
    const preParsedObject = preParsed !== undefined && preParsed !== null && typeof preParsed === 'object' && !Buffer.isBuffer(preParsed);
    // A framework's body parser already read the stream: use what it made of it.
    if (preParsedObject && (Object.keys(preParsed).length > 0 || req.readableEnded)) return this.accept(preParsed, client);
    const type = String(req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
    if (type !== 'application/json' && type !== 'text/plain') return reply(415, { error: 'Content-Type must be application/json' });
    let raw: Buffer;
    try {
      raw = Buffer.isBuffer(preParsed) ? preParsed : await readBody(req, this.o.maxBodyBytes);
      if (String(req.headers['content-encoding'] ?? '').toLowerCase() === 'gzip') raw = gunzipSync(raw, { maxOutputLength: this.o.maxBodyBytes });
    } catch (err) {
      if ((err as Error).message === 'too large' || (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
        return reply(413, { error: `body larger than ${this.o.maxBodyBytes} bytes` });
      }
      return reply(400, { error: 'unreadable body' });
    }
    if (raw.length > this.o.maxBodyBytes) return reply(413, { error: `body larger than ${this.o.maxBodyBytes} bytes` });
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw.toString('utf8'));
    } catch {
      return reply(400, { error: 'body is not JSON' });
    }
    return this.accept(parsed, client);
  }

  private allow(client: string, nowMs: number): boolean {
    const rate = this.o.ratePerSecond;
    if (rate <= 0) return true;
    const b = this.buckets.get(client) ?? { tokens: rate * 2, at: nowMs };
    b.tokens = Math.min(rate * 2, b.tokens + ((nowMs - b.at) / 1000) * rate);
    b.at = nowMs;
    if (this.buckets.size > 10000) this.buckets.clear();
    this.buckets.set(client, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  private remember(key: string): void {
    this.seen.set(key, true);
    if (this.seen.size > this.o.dedupWindow) {
      const first = this.seen.keys().next().value;
      if (first !== undefined) this.seen.delete(first);
    }
  }
}

/** A plain Node handler (http.createServer, express `app.post(path, handler)`). */
export function createRelayHandler(relay: BrowserRelay): (req: IncomingMessage & { body?: unknown }, res: ServerResponse) => void {
  return (req, res) => {
    if (req.method !== 'POST') {
      res.writeHead(405, { Allow: 'POST', 'Content-Type': 'application/json' }).end('{"error":"POST only"}');
      return;
    }
    relay.handleRaw(req, req.body).then(
      (r) => {
        res.writeHead(r.status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', ...r.headers }).end(JSON.stringify(r.body));
      },
      () => {
        res.writeHead(500, { 'Content-Type': 'application/json' }).end('{"error":"relay failed"}');
      },
    );
  };
}

interface ValidEntry {
  ts: bigint;
  level: string;
  line: string;
  meta: Record<string, string> | undefined;
}

interface ValidBatch {
  session: string;
  batch: number;
  sentAt: number;
  service: string | undefined;
  entries: ValidEntry[];
}

function validate(body: unknown, maxEntries: number): ValidBatch | string {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return 'body must be a JSON object';
  const b = body as Record<string, unknown>;
  if (b.v !== 1) return 'v must be 1';
  if (typeof b.session !== 'string' || !SESSION.test(b.session)) return 'session must be 8-64 characters of [A-Za-z0-9_-]';
  if (typeof b.batch !== 'number' || !Number.isSafeInteger(b.batch) || b.batch < 0) return 'batch must be an integer >= 0';
  if (typeof b.sentAt !== 'number' || !Number.isFinite(b.sentAt)) return 'sentAt must be milliseconds since the epoch';
  if (b.service !== undefined && typeof b.service !== 'string') return 'service must be a string';
  if (!Array.isArray(b.entries) || b.entries.length === 0) return 'entries must be a non-empty array';
  if (b.entries.length > maxEntries) return `at most ${maxEntries} entries per batch`;
  const entries: ValidEntry[] = [];
  for (const [i, raw] of b.entries.entries()) {
    if (typeof raw !== 'object' || raw === null) return `entries[${i}] must be an object`;
    const e = raw as Record<string, unknown>;
    let ts: bigint;
    if (typeof e.ts === 'string' && /^\d{1,19}$/.test(e.ts)) ts = BigInt(e.ts);
    else if (typeof e.ts === 'number' && Number.isFinite(e.ts) && e.ts > 0) ts = BigInt(Math.round(e.ts * 1000)) * 1000n;
    else return `entries[${i}].ts must be nanoseconds (decimal string) or milliseconds (number)`;
    if (typeof e.level !== 'string' || !LEVELS.has(e.level)) return `entries[${i}].level must be one of error, warn, info, debug`;
    if (typeof e.line !== 'string') return `entries[${i}].line must be a string`;
    let meta: Record<string, string> | undefined;
    if (e.meta !== undefined) {
      if (typeof e.meta !== 'object' || e.meta === null || Array.isArray(e.meta)) return `entries[${i}].meta must be an object of strings`;
      meta = {};
      for (const [k, v] of Object.entries(e.meta as Record<string, unknown>)) {
        if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') meta[k] = String(v);
      }
    }
    entries.push({ ts, level: e.level, line: e.line, meta });
  }
  return { session: b.session, batch: b.batch, sentAt: b.sentAt, service: b.service as string | undefined, entries };
}

function countEntries(body: unknown): number {
  const entries = (body as { entries?: unknown } | null)?.entries;
  return Array.isArray(entries) ? entries.length : 0;
}

function reply(status: number, body: Record<string, unknown>, headers: Record<string, string> = {}): RelayReply {
  return { status, headers, body };
}

export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        if (!failed) {
          failed = true;
          reject(new Error('too large'));
        }
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!failed) resolve(Buffer.concat(chunks));
    });
    req.on('error', (err) => {
      if (!failed) reject(err);
    });
  });
}
