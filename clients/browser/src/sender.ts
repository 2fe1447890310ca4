import type { SendResult } from './response.js';

export interface SenderOptions {
  url: string;
  /** Extra request headers (Authorization for the direct target). */
  headers: Record<string, string>;
  credentials: RequestCredentials;
  timeoutMs: number;
}

/**
 * One HTTP request. Never throws: a rejection (network, CORS, abort) comes
 * back as status null with the error's text.
 */
export class Sender {
  constructor(private readonly o: SenderOptions) {}

  async send(body: Uint8Array, opts: { keepalive: boolean; gzip: boolean }): Promise<SendResult> {
    const headers: Record<string, string> = { 'Content-Type': 'application/json', ...this.o.headers };
    let payload: Uint8Array = body;
    if (opts.gzip) {
      payload = await gzip(body);
      headers['Content-Encoding'] = 'gzip';
    }
    const init: RequestInit = {
      method: 'POST',
      headers,
      body: payload as BufferSource,
      keepalive: opts.keepalive,
      credentials: this.o.credentials,
      mode: 'cors',
      // No `cache: 'no-store'`: Chromium then skips its CORS preflight cache and preflights every push
      // (measured); a POST's answer is never cached anyway.
    };
    let timer: ReturnType<typeof setTimeout> | undefined;
    let timedOut = false;
    if (typeof AbortController === 'function' && this.o.timeoutMs > 0) {
      const ac = new AbortController();
      init.signal = ac.signal;
      timer = setTimeout(() => {
        timedOut = true;
        ac.abort();
      }, this.o.timeoutMs);
    }
    try {
      const res = await fetch(this.o.url, init);
      let text = '';
      try {
        text = await res.text();
      } catch {
        /* the status is what counts */
      }
      return { status: res.status, retryAfter: res.headers.get('Retry-After'), body: text };
    } catch (err) {
      return { status: null, retryAfter: null, body: '', error: String(err), timedOut };
    } finally {
      if (timer !== undefined) clearTimeout(timer);
    }
  }
}

/** gzip with the browser's CompressionStream. */
export async function gzip(data: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([data as BlobPart]).stream().pipeThrough(new CompressionStream('gzip'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

export function canGzip(): boolean {
  return typeof CompressionStream === 'function';
}
