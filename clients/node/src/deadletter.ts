import { appendFileSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { SpoolEntry } from './spool';

/**
 * Lines Loki refused for good (400 with the line named, 413 for a single
 * line), kept next to the spool as NDJSON so an operator can see or replay
 * them: `dead-letter.ndjson`, rotated once to `dead-letter.1.ndjson` at `maxBytes`.
 */
export class DeadLetter {
  readonly path: string;
  private size: number;

  constructor(dir: string, private readonly maxBytes: number, private readonly onError: (err: Error) => void) {
    this.path = join(dir, 'dead-letter.ndjson');
    try {
      this.size = statSync(this.path).size;
    } catch {
      this.size = 0;
    }
  }

  write(entries: readonly SpoolEntry[], reason: string, status: number, detail: string): void {
    if (entries.length === 0) return;
    const at = new Date().toISOString();
    const text = entries
      .map((e) => JSON.stringify({ at, reason, status, detail: detail.slice(0, 2048), ts: e.ts, labels: e.labels, line: e.line, meta: e.meta }))
      .join('\n');
    try {
      if (this.size + text.length > this.maxBytes && this.size > 0) {
        renameSync(this.path, join(this.path, '..', 'dead-letter.1.ndjson'));
        this.size = 0;
      }
      appendFileSync(this.path, `${text}\n`, { mode: 0o600 });
      this.size += text.length + 1;
    } catch (err) {
      this.onError(err as Error);
    }
  }
}
