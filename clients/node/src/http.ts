import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { gzip } from 'node:zlib';
import { promisify } from 'node:util';
import type { Clock } from './clock';

const gzipAsync = promisify(gzip);

/**
 * One push request: gzip'd JSON over node:https with a keep-alive agent.
 * node:https rather than the global fetch, because only it takes a private CA
 * (`ca`) and a fixed address for the host name (`connectTo`) without the
 * undici package.
 */
export interface PushClientOptions {
  url: string;
  credentials: () => { username: string; password: string };
  /** PEM CA certificate(s) to trust instead of Node's bundled roots (like curl --cacert). */
  ca?: string | Buffer | undefined;
  /** Connect here ("host" or "host:port") instead of resolving the URL's host; TLS name and Host stay the URL's. */
  connectTo?: string | undefined;
  timeoutMs: number;
  gzipLevel: number;
  userAgent: string;
  clock: Clock;
}

export interface PushResponse {
  status: number;
  /** At most 64 KiB of the response body. */
  body: string;
  retryAfter: string | undefined;
  date: string | undefined;
}

export class PushTimeoutError extends Error {
  override name = 'PushTimeoutError';
}

export class PushClient {
  private readonly agent: http.Agent;
  private readonly target: URL;
  private readonly lookup: LookupFunction | undefined;

  constructor(private readonly options: PushClientOptions) {
    this.target = new URL(options.url);
    const isHttps = this.target.protocol === 'https:';
    let lookup: LookupFunction | undefined;
    if (options.connectTo) {
      const address = parseHostPort(options.connectTo).host;
      const family = address.includes(':') ? 6 : 4;
      lookup = (_hostname, opts, cb) => {
        if ((opts as { all?: boolean }).all) (cb as unknown as (e: null, a: { address: string; family: number }[]) => void)(null, [{ address, family }]);
        else cb(null, address, family);
      };
    }
    this.lookup = lookup;
    const agentOptions = { keepAlive: true, maxSockets: 2, ...(lookup ? { lookup } : {}) };
    this.agent = isHttps
      ? new https.Agent({ ...agentOptions, ...(options.ca ? { ca: options.ca } : {}) })
      : new http.Agent(agentOptions);
  }

  /** Sends `json` (the push body). Resolves with the response; rejects on network errors and timeouts. */
  async push(json: string, signal?: AbortSignal): Promise<PushResponse> {
    const body = await gzipAsync(Buffer.from(json), { level: this.options.gzipLevel });
    const { username, password } = this.options.credentials();
    const port = this.options.connectTo ? parseHostPort(this.options.connectTo).port : undefined;
    const isHttps = this.target.protocol === 'https:';
    const request = isHttps ? https.request : http.request;
    return new Promise<PushResponse>((resolve, reject) => {
      let done = false;
      const finish = (err: Error | undefined, res?: PushResponse): void => {
        if (done) return;
        done = true;
        this.options.clock.clearTimeout(timer);
        if (err) reject(err);
        else resolve(res as PushResponse);
      };
      const req = request(
        {
          protocol: this.target.protocol,
          hostname: this.target.hostname,
          port: port ?? (this.target.port ? Number(this.target.port) : undefined),
          path: `${this.target.pathname}${this.target.search}`,
          method: 'POST',
          agent: this.agent,
          ...(this.lookup ? { lookup: this.lookup } : {}),
          ...(isHttps ? { servername: this.target.hostname } : {}),
          headers: {
            Host: this.target.host,
            'Content-Type': 'application/json',
            'Content-Encoding': 'gzip',
            'Content-Length': String(body.length),
            'User-Agent': this.options.userAgent,
            Authorization: `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`,
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            if (size < 65536) chunks.push(chunk);
            size += chunk.length;
          });
          res.on('end', () => {
            finish(undefined, {
              status: res.statusCode ?? 0,
              body: Buffer.concat(chunks).subarray(0, 65536).toString('utf8'),
              retryAfter: header(res.headers['retry-after']),
              date: header(res.headers.date),
            });
          });
          res.on('error', (err) => finish(err));
        },
      );
      const timer = this.options.clock.setTimeout(() => {
        const err = new PushTimeoutError(`push timed out after ${this.options.timeoutMs} ms`);
        req.destroy(err);
        finish(err);
      }, this.options.timeoutMs);
      timer.unref?.();
      req.on('error', (err) => finish(err));
      if (signal) {
        if (signal.aborted) req.destroy(new Error('push aborted'));
        else signal.addEventListener('abort', () => req.destroy(new Error('push aborted')), { once: true });
      }
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

function header(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

export function parseHostPort(text: string): { host: string; port: number | undefined } {
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (v6) return { host: v6[1] as string, port: v6[2] ? Number(v6[2]) : undefined };
  const parts = text.split(':');
  if (parts.length === 2) return { host: parts[0] as string, port: Number(parts[1]) };
  return { host: text, port: undefined };
}
