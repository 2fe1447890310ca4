/**
 * Reading Loki's error bodies.
 *
 * Loki answers a push in which some entries are invalid with 400 and a
 * plain-text body naming them, and it STORES the valid entries of that push.
 * The formats below were captured from Loki 3.4.2 (test/fixtures/loki-3.4.2-errors.json):
 *
 *   entry for stream '{...}' has timestamp too old: 2026-11-17T09:20:18Z, oldest acceptable timestamp is: 2026-11-24T09:20:18Z
 *   entry for stream '{...}' has timestamp too new: 2026-12-01T10:20:18Z
 *   Max entry size '256' bytes exceeded for stream '{...}' while adding an entry with length '300' bytes
 *   entry with timestamp 2026-12-01 07:20:18.388698812 +0000 UTC ignored, reason: 'entry too far behind, ...',
 *   user 'fake', total ignored: 1 out of 2 for stream: {...}
 *
 * and several errors of one kind are grouped as "N errors like: <the first>".
 * So a body does not always name every rejected entry; what it gives are
 * rules (too old than X, longer than N bytes, this exact timestamp in this
 * stream) that say for sure which entries were rejected. The sender
 * dead-letters those, and re-sends the rest once to confirm (Loki collapses
 * the ones it stored: same stream, timestamp and line).
 */
export type Rejection =
  | { kind: 'too_old'; oldestAcceptableNs: bigint; labels: Record<string, string> | undefined }
  | { kind: 'too_new'; firstRejectedSecondNs: bigint; labels: Record<string, string> | undefined }
  | { kind: 'too_long'; maxBytes: number }
  | { kind: 'out_of_order'; tsNs: bigint; labels: Record<string, string> | undefined }
  | { kind: 'too_far_behind'; oldestAcceptableNs: bigint; labels: Record<string, string> | undefined };

export interface ParsedLokiError {
  rejections: Rejection[];
  /** Streams named in a 429 (per-stream rate limit); empty when the whole request was refused. */
  limitedStreams: Record<string, string>[];
  grouped: boolean;
}

export interface CandidateEntry {
  ts: string;
  line: string;
  labels: Readonly<Record<string, string>>;
}

const RFC3339 = String.raw`(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d))`;
const TOO_OLD = new RegExp(String.raw`entry for stream '(\{[^']*\})' has timestamp too old: ${RFC3339}, oldest acceptable timestamp is: ${RFC3339}`, 'g');
const TOO_NEW = new RegExp(String.raw`entry for stream '(\{[^']*\})' has timestamp too new: ${RFC3339}`, 'g');
const TOO_LONG = /Max entry size '(\d+)' bytes exceeded/g;
// The ingester lists every entry it ignored, then names their stream once.
const OOO_ENTRY = new RegExp(String.raw`entry with timestamp (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? [+-]\d{4}) \S+ ignored, reason: '([^']*)'`, 'g');
const OOO_STREAM = /total ignored: \d+ out of \d+ for stream: (\{[^\n]*\})/g;
const OLDEST = new RegExp(String.raw`oldest acceptable timestamp is: ${RFC3339}`);
const STREAM_IN_QUOTES = /stream '(\{[^']*\})'/g;

export function parseLokiError(body: string): ParsedLokiError {
  const rejections: Rejection[] = [];
  for (const m of body.matchAll(TOO_OLD)) rejections.push({ kind: 'too_old', oldestAcceptableNs: rfc3339ToNs(m[3] as string), labels: parseLabels(m[1] as string) });
  for (const m of body.matchAll(TOO_NEW)) rejections.push({ kind: 'too_new', firstRejectedSecondNs: rfc3339ToNs(m[2] as string), labels: parseLabels(m[1] as string) });
  for (const m of body.matchAll(TOO_LONG)) rejections.push({ kind: 'too_long', maxBytes: Number(m[1]) });
  const blocks = [...body.matchAll(OOO_STREAM)].map((m) => ({ at: m.index ?? 0, labels: parseLabels(m[1] as string) }));
  for (const m of body.matchAll(OOO_ENTRY)) {
    const labels = blocks.find((b) => b.at > (m.index ?? 0))?.labels;
    rejections.push({ kind: 'out_of_order', tsNs: goTimeToNs(m[1] as string), labels });
    const oldest = OLDEST.exec(m[2] as string);
    if (oldest) rejections.push({ kind: 'too_far_behind', oldestAcceptableNs: rfc3339ToNs(oldest[1] as string), labels });
  }
  const limitedStreams: Record<string, string>[] = [];
  if (/rate limit exceeded/i.test(body) && !/^Ingestion rate limit exceeded/im.test(body)) {
    for (const m of body.matchAll(STREAM_IN_QUOTES)) {
      const labels = parseLabels(m[1] as string);
      if (labels) limitedStreams.push(labels);
    }
  }
  return { rejections, limitedStreams, grouped: /\d+ errors like:/.test(body) };
}

/** Whether Loki certainly rejected this entry, by the rules of a parsed body. */
export function isRejected(entry: CandidateEntry, rejections: readonly Rejection[]): Rejection | undefined {
  const ts = BigInt(entry.ts);
  for (const r of rejections) {
    switch (r.kind) {
      case 'too_old':
        // Loki's reject_old_samples applies to every stream.
        if (ts < r.oldestAcceptableNs) return r;
        break;
      case 'too_far_behind':
        // The out-of-order window is per stream.
        if (ts < r.oldestAcceptableNs && sameStream(entry, r.labels)) return r;
        break;
      case 'too_new':
        // The body gives the rejected entry's time truncated to the second:
        // anything from the next second on is later still, so also too new.
        if (ts >= r.firstRejectedSecondNs + 1_000_000_000n) return r;
        break;
      case 'too_long':
        if (Buffer.byteLength(entry.line) > r.maxBytes) return r;
        break;
      case 'out_of_order':
        if (ts === r.tsNs && sameStream(entry, r.labels)) return r;
        break;
    }
  }
  return undefined;
}

/**
 * Entries a rule may have meant but does not prove (its timestamps are cut to
 * the second): sent on their own so the next answer is about them alone.
 */
export function isSuspect(entry: CandidateEntry, rejections: readonly Rejection[]): boolean {
  const ts = BigInt(entry.ts);
  const second = 1_000_000_000n;
  for (const r of rejections) {
    if (r.kind === 'too_new' && ts >= r.firstRejectedSecondNs && ts < r.firstRejectedSecondNs + second && sameStream(entry, r.labels)) return true;
    if ((r.kind === 'too_old' || r.kind === 'too_far_behind') && ts >= r.oldestAcceptableNs && ts < r.oldestAcceptableNs + second && sameStream(entry, r.labels)) return true;
  }
  return false;
}

function sameStream(entry: CandidateEntry, labels: Record<string, string> | undefined): boolean {
  return labels === undefined || labelsMatch(entry.labels, labels);
}

/** Our labels are a subset of Loki's (Loki adds service_name). */
export function labelsMatch(ours: Readonly<Record<string, string>>, theirs: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(ours)) if (theirs[k] !== v) return false;
  return true;
}

/** Parses a Prometheus-style label set `{a="b", c="d\"e"}`. */
export function parseLabels(text: string): Record<string, string> | undefined {
  const inner = text.trim();
  if (!inner.startsWith('{') || !inner.endsWith('}')) return undefined;
  const out: Record<string, string> = {};
  const re = /([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (const m of inner.slice(1, -1).matchAll(re)) {
    out[m[1] as string] = (m[2] as string).replace(/\\(.)/g, (_s, c: string) => (c === 'n' ? '\n' : c));
  }
  return out;
}

function rfc3339ToNs(text: string): bigint {
  const m = /^(.*?:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(text);
  if (!m) return 0n;
  const ms = Date.parse(`${m[1]}${m[3]}`);
  const frac = ((m[2] ?? '') + '000000000').slice(0, 9);
  return BigInt(ms) * 1_000_000n + BigInt(frac);
}

/** Go's time.Time String(): `2006-01-02 15:04:05.999999999 -0700`. */
function goTimeToNs(text: string): bigint {
  const m = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)(?:\.(\d+))? ([+-])(\d\d)(\d\d)$/.exec(text);
  if (!m) return 0n;
  const ms = Date.parse(`${m[1]}T${m[2]}${m[4]}${m[5]}:${m[6]}`);
  const frac = ((m[3] ?? '') + '000000000').slice(0, 9);
  return BigInt(ms) * 1_000_000n + BigInt(frac);
}
