import type { Context } from './entry.js';

export type CaptureSink = (message: string, error: unknown, context: Context) => void;

/**
 * Uncaught errors (`error` events on window: what window.onerror sees) and
 * unhandled promise rejections, as error lines. Listeners are added, never
 * assigned, so the app's own window.onerror keeps working, and the browser
 * still prints them. At most `maxPerMinute` are logged (an error in a render
 * loop would otherwise flood the spool); the rest are counted by `onDropped`.
 */
export function captureErrors(target: Window, sink: CaptureSink, maxPerMinute: number, onDropped: () => void): () => void {
  let windowStart = 0;
  let inWindow = 0;
  let busy = false;
  const admit = (): boolean => {
    const now = Date.now();
    if (now - windowStart >= 60_000) {
      windowStart = now;
      inWindow = 0;
    }
    inWindow += 1;
    if (inWindow > maxPerMinute) {
      onDropped();
      return false;
    }
    return true;
  };
  const guarded = (f: () => void): void => {
    if (busy) return; // an error thrown while logging an error is not logged again
    busy = true;
    try {
      f();
    } catch {
      /* never throw from the logger */
    } finally {
      busy = false;
    }
  };
  const onError = (ev: ErrorEvent): void => {
    if (!admit()) return;
    guarded(() => {
      const context: Context = { source: 'window.onerror' };
      if (ev.filename) context.filename = ev.filename;
      if (ev.lineno) context.lineno = ev.lineno;
      if (ev.colno) context.colno = ev.colno;
      sink(ev.message || 'uncaught error', ev.error ?? ev.message, context);
    });
  };
  const onRejection = (ev: PromiseRejectionEvent): void => {
    if (!admit()) return;
    guarded(() => {
      const reason: unknown = ev.reason;
      const text = reason instanceof Error ? reason.message : typeof reason === 'string' ? reason : 'unhandled rejection';
      sink(`unhandled rejection: ${text}`, reason, { source: 'unhandledrejection' });
    });
  };
  target.addEventListener('error', onError);
  target.addEventListener('unhandledrejection', onRejection);
  return () => {
    target.removeEventListener('error', onError);
    target.removeEventListener('unhandledrejection', onRejection);
  };
}
