import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface FixtureCase {
  status: number;
  body: string;
  request?: { streams: { stream: Record<string, string>; values: [string, string, Record<string, string>?][] }[] };
  stored_lines_by_query?: string[];
  retry_after?: string;
}

/** Responses captured from a real Loki 3.4.2 (see the file's _about). */
export function lokiFixtures(): Record<string, FixtureCase> {
  const path = join(__dirname, '..', '..', '..', 'test', 'fixtures', 'loki-3.4.2-errors.json');
  return (JSON.parse(readFileSync(path, 'utf8')) as { cases: Record<string, FixtureCase> }).cases;
}
