import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { realLokiZip, startRealLoki } from './helpers/real-loki';
import { TestUpstream } from './helpers/upstream';
import { makeTransport, tempDir } from './helpers/setup';
import http from 'node:http';

/**
 * Only with OBS_REAL_ARTIFACTS_DIR (a directory holding loki-linux-amd64.zip):
 * the transport against a REAL Loki 3.4.2 on 127.0.0.1. Otherwise one SKIP line.
 */
describe('against a real Loki (OBS_REAL_ARTIFACTS_DIR)', () => {
  it('partial 400s: exactly the invalid lines dead-lettered, the valid ones stored once, a full replay collapses; the heartbeat queries work', async (t) => {
    const found = realLokiZip();
    if ('skip' in found) {
      console.log(`SKIP: real-Loki test: ${found.skip}`);
      t.skip(found.skip);
      return;
    }
    const { dir, cleanup } = tempDir('loki-real-');
    const loki = await startRealLoki(found.zip, dir, 1024); // max_line_size 1 KiB: the heartbeat fits, a 1500-byte line does not
    // A recording proxy in front of Loki: every exchange of the conversation.
    const exchanges: { request: unknown; status: number; body: string }[] = [];
    const proxy = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', async () => {
        const body = Buffer.concat(chunks);
        const r = await fetch(loki.url, { method: 'POST', headers: { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip' }, body });
        const text = await r.text();
        const { gunzipSync } = await import('node:zlib');
        exchanges.push({ request: JSON.parse(gunzipSync(body).toString()), status: r.status, body: text });
        res.writeHead(r.status, { Date: r.headers.get('date') ?? new Date().toUTCString() }).end(text);
      });
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    const port = (proxy.address() as import('node:net').AddressInfo).port;
    const up = { port, url: `http://127.0.0.1:${port}/loki/api/v1/push` } as TestUpstream;
    try {
      const now = BigInt(Date.now()) * 1_000_000n;
      const first = makeTransport(up, join(dir, 'spool'), { instance: 'real-1', batchWaitMs: 0, heartbeatIntervalMs: 0 }).t;
      first.append({ level: 'info', line: 'newest first', ts: now });
      assert.equal(await first.flush(30_000), true);
      // (No entry "too far behind" its stream's newest: the transport never makes one for its own
      // streams, and Loki 3.4.2 can answer 204 while dropping it; see the README.)
      const bad = new Set(['too old', 'y'.repeat(1500), 'from the future']);
      first.append({ level: 'info', line: 'too old', ts: now - 14n * 86_400_000_000_000n });
      first.append({ level: 'info', line: 'y'.repeat(1500), ts: now + 2n });
      first.append({ level: 'warn', line: 'from the future', ts: now + 3_600_000_000_000n });
      for (let i = 0; i < 1000; i += 1) first.append({ level: i % 2 ? 'info' : 'error', line: `valid ${i}`, ts: now + 10n + BigInt(i), meta: { trace_id: `t${i}` } });
      assert.equal(await first.flush(30_000), true);
      first.heartbeat();
      assert.equal(await first.flush(30_000), true);
      const dead = readFileSync(join(dir, 'spool', 'dead-letter.ndjson'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { line: string }).line);
      assert.deepEqual(new Set(dead), bad);
      assert.equal(first.snapshot().dropped.rejected, bad.size);
      await first.shutdown(1000);
      // Replay everything again (as after a lost cursor): Loki collapses what it has.
      unlinkSync(join(dir, 'spool', 'cursor.json'));
      const again = makeTransport(up, join(dir, 'spool'), { instance: 'real-1', batchWaitMs: 0, heartbeatIntervalMs: 0 }).t;
      assert.equal(await again.flush(30_000), true);
      await again.shutdown(1000);
      await new Promise((r) => setTimeout(r, 1500));
      const streams = await loki.query('{instance="real-1"}', now - 3_600_000_000_000n, now + 3_600_000_000_000n);
      const lines = streams.flatMap((s) => s.values.map((v) => v[1]));
      const valid = lines.filter((l) => l.startsWith('valid '));
      assert.equal(valid.length, 1000, 'every valid line once');
      assert.equal(new Set(valid).size, 1000, 'no duplicates after the replay');
      for (const b of bad) assert.ok(!lines.includes(b), `${b.slice(0, 20)} not stored`);
      const withMeta = streams.find((s) => s.labels.trace_id !== undefined);
      assert.ok(withMeta, 'structured metadata stored (returned as labels of the entry)');
      // The heartbeat queries of the README.
      const newest = await loki.instant('max by (store) (max_over_time({store=~".+"} |= `"type":"heartbeat"` | json | unwrap unix [10m]))');
      assert.equal(newest[0]?.metric.store, 'S001');
      assert.ok(Math.abs(Number(newest[0]?.value[1]) - Date.now() / 1000) < 120);
      const drops = await loki.instant('max by (store) (max_over_time({store=~".+"} |= `"type":"heartbeat"` | json | unwrap dropped_total [10m]))');
      assert.equal(Number(drops[0]?.value[1]), bad.size);
    } finally {
      console.log(`real Loki: ${exchanges.length} pushes, statuses ${exchanges.map((e) => e.status).join(',')}`);
      if (process.env.OBS_CAPTURE_FIXTURES) writeFileSync(process.env.OBS_CAPTURE_FIXTURES, JSON.stringify({ about: 'A real Loki 3.4.2 conversation with the transport (real-loki.test.ts)', exchanges }, null, 1));
      await new Promise<void>((r) => proxy.close(() => r()));
      await loki.stop();
      cleanup();
    }
  });
});
