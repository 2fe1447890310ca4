import { type Level, type SpoolClass, spoolClass } from './levels.js';
import { cutUtf8, utf8Length } from './utf8.js';

/** One log line as the spool keeps it and the senders encode it. */
export interface LogEntry {
  /** Spool key: timestamp + page session, sorts oldest first. */
  k: string;
  /** Nanoseconds since the epoch, decimal string. */
  ts: string;
  level: Level;
  /** Spool class for the byte cap. */
  p: SpoolClass;
  /** The line: JSON text. */
  line: string;
  /** Structured metadata (string values). */
  meta: Record<string, string>;
  /** Bytes of the entry in a relay body (the spool's and batches' size unit). */
  b: number;
}

export type Context = Record<string, unknown>;

export interface ErrorInfo {
  name?: string;
  message: string;
  stack?: string;
  cause?: ErrorInfo;
  value?: string;
}

const RESERVED = new Set(['level', 'message', 'error']);

/** `terminalId` -> `terminal_id`. */
export function snakeCase(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** What was thrown, as JSON-friendly fields (Error: name, message, stack, cause). */
export function serializeError(err: unknown, depth = 0): ErrorInfo {
  if (err instanceof Error || (typeof err === 'object' && err !== null && typeof (err as { message?: unknown }).message === 'string')) {
    const e = err as { name?: unknown; message: string; stack?: unknown; cause?: unknown };
    const out: ErrorInfo = { message: e.message };
    if (typeof e.name === 'string') out.name = e.name;
    if (typeof e.stack === 'string') out.stack = e.stack;
    if (e.cause !== undefined && depth < 3) out.cause = serializeError(e.cause, depth + 1);
    return out;
  }
  if (typeof err === 'string') return { message: err };
  return { message: String(err), value: safeStringify(err) };
}

/** JSON.stringify that never throws: cycles become "[Circular]", bigints strings, Errors their fields. */
export function safeStringify(value: unknown): string {
  const seen = new WeakSet<object>();
  try {
    return (
      JSON.stringify(value, function replacer(this: unknown, _key: string, v: unknown): unknown {
        if (typeof v === 'bigint') return v.toString();
        if (v instanceof Error) return serializeError(v);
        if (typeof v === 'object' && v !== null) {
          if (seen.has(v)) return '[Circular]';
          seen.add(v);
        }
        return v;
      }) ?? 'null'
    );
  } catch (err) {
    return JSON.stringify(`[unserializable: ${String(err)}]`);
  }
}

export interface EntryStatics {
  /** Page session (per page load). */
  session: string;
  /** Metadata every entry of this page carries (terminal_id, user_id, page, session). */
  meta: Readonly<Record<string, string>>;
  /** Context keys (snake_case) sent as structured metadata instead of in the line. */
  metadataKeys: ReadonlySet<string>;
  /** Longest line in bytes; longer lines are cut (valid JSON kept) and get metadata truncated=1. */
  maxLineBytes: number;
}

/**
 * Builds an entry: the line is JSON (`{"level","message",...context,"error"}`),
 * context keys named in `metadataKeys` (camelCase accepted) go to structured
 * metadata as strings.
 */
export function buildEntry(level: Level, message: string, error: unknown, hasError: boolean, context: Context | undefined, ts: string, key: string, s: EntryStatics): LogEntry {
  const meta: Record<string, string> = { ...s.meta };
  const fields: Record<string, unknown> = { level, message };
  if (context) {
    for (const [k, v] of Object.entries(context)) {
      const snake = snakeCase(k);
      if (s.metadataKeys.has(snake) && (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean')) {
        meta[snake] = String(v);
        continue;
      }
      if (v === undefined) continue;
      fields[RESERVED.has(k) ? `ctx_${k}` : k] = v;
    }
  }
  const err = hasError ? serializeError(error) : undefined;
  if (err) fields.error = err;
  let line = safeStringify(fields);
  const full = utf8Length(line);
  if (full > s.maxLineBytes) {
    line = shortLine(level, message, err, full, s.maxLineBytes);
    meta.truncated = '1';
  }
  const entry: LogEntry = { k: key, ts, level, p: spoolClass(level), line, meta, b: 0 };
  entry.b = utf8Length(JSON.stringify({ ts, level, line, meta }));
  return entry;
}

function shortLine(level: Level, message: string, err: ErrorInfo | undefined, fullBytes: number, max: number): string {
  for (let budget = max; budget > 64; budget = Math.floor(budget / 2)) {
    const short: Record<string, unknown> = { level, message: cutUtf8(message, Math.floor(budget / 4)), truncated_bytes: fullBytes };
    if (err) {
      const e: ErrorInfo = { message: cutUtf8(err.message, Math.floor(budget / 8)) };
      if (err.name !== undefined) e.name = cutUtf8(err.name, 64);
      if (err.stack !== undefined) e.stack = cutUtf8(err.stack, Math.floor(budget / 2));
      short.error = e;
    }
    const text = JSON.stringify(short);
    if (utf8Length(text) <= max) return text;
  }
  return JSON.stringify({ level, message: cutUtf8(message, 16), truncated_bytes: fullBytes });
}
