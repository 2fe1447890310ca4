import type { LogEntry } from './entry.js';

/** Identity of one batch: the relay drops a resent (session, batch) it already took. */
export interface BatchId {
  key: string;
  session: string;
  batch: number;
}

/** Turns entries into a request body (JSON text). `sentAt`: Date.now() of this attempt. */
export type Encoder = (entries: readonly LogEntry[], id: BatchId, sentAt: number) => string;

/** The store backend's relay route (`POST /logs/relay`, wire format v1 of @obs/loki-transport). */
export function relayEncoder(service: string): Encoder {
  const svc = JSON.stringify(service);
  return (entries, id, sentAt) => {
    let out = `{"v":1,"session":${JSON.stringify(id.session)},"batch":${id.batch},"sentAt":${sentAt},"service":${svc},"entries":[`;
    entries.forEach((e, i) => {
      if (i > 0) out += ',';
      out += `{"ts":${JSON.stringify(e.ts)},"level":"${e.level}","line":${JSON.stringify(e.line)}`;
      if (hasKeys(e.meta)) out += `,"meta":${JSON.stringify(e.meta)}`;
      out += '}';
    });
    return `${out}]}`;
  };
}

/**
 * Loki's JSON push format, one stream per push (Loki 3.4.2 answers 204 to a
 * several-stream push one of whose streams its ingester refused):
 * `{"streams":[{"stream":{labels},"values":[["<ns>","<line>",{metadata}]]}]}`.
 */
export function lokiEncoder(labels: Readonly<Record<string, string>>): Encoder {
  const stream = JSON.stringify(labels);
  return (entries) => {
    let out = `{"streams":[{"stream":${stream},"values":[`;
    entries.forEach((e, i) => {
      if (i > 0) out += ',';
      out += `[${JSON.stringify(e.ts)},${JSON.stringify(e.line)}`;
      if (hasKeys(e.meta)) out += `,${JSON.stringify(e.meta)}`;
      out += ']';
    });
    return `${out}]}]}`;
  };
}

function hasKeys(o: Record<string, string>): boolean {
  for (const _ in o) return true;
  return false;
}
