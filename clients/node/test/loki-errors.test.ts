import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isRejected, parseLabels, parseLokiError } from '../src/loki-errors';
import { lokiFixtures } from './helpers/fixtures';
import { TestUpstream, type PushRequest, type Reply } from './helpers/upstream';
import { makeTransport, tempDir } from './helpers/setup';

const cases = lokiFixtures();
const partial = ['too_old', 'line_too_long', 'too_new', 'out_of_order', 'two_streams', 'mixed'];

describe("Loki 3.4.2's real error bodies", () => {
  it('parses each captured body into rules that name only entries Loki did not store', () => {
    for (const name of partial) {
      const c = cases[name];
      assert.ok(c?.request && c.stored_lines_by_query, name);
      const parsed = parseLokiError(c.body);
      assert.ok(parsed.rejections.length > 0, `${name}: no rule parsed from ${c.body}`);
      for (const s of c.request.streams) {
        for (const [ts, line] of s.values) {
          const rejected = isRejected({ ts, line, labels: s.stream }, parsed.rejections) !== undefined;
          if (c.stored_lines_by_query.includes(line)) assert.equal(rejected, false, `${name}: stored line ${line} marked rejected`);
        }
      }
    }
  });

  it('reads the kinds: too old, too new, too long, out of order (exact ns and stream), grouped', () => {
    const old = parseLokiError(cases.too_old?.body ?? '');
    assert.equal(old.rejections[0]?.kind, 'too_old');
    assert.equal(parseLokiError(cases.too_new?.body ?? '').rejections[0]?.kind, 'too_new');
    const long = parseLokiError(cases.line_too_long?.body ?? '').rejections[0];
    assert.deepEqual(long, { kind: 'too_long', maxBytes: 256 });
    const ooo = parseLokiError(cases.out_of_order?.body ?? '').rejections[0];
    assert.equal(ooo?.kind, 'out_of_order');
    const behind = cases.out_of_order?.request?.streams[0]?.values[0];
    assert.ok(ooo?.kind === 'out_of_order' && behind && ooo.tsNs === BigInt(behind[0]), 'exact nanoseconds');
    assert.equal(ooo?.kind === 'out_of_order' ? ooo.labels?.case : '', 'ooo');
    assert.equal(parseLokiError(cases.two_streams?.body ?? '').grouped, true);
    assert.equal(parseLokiError(cases.mixed?.body ?? '').rejections.length, 4);
    assert.deepEqual(parseLokiError(cases.ingestion_rate_429?.body ?? '').limitedStreams, []);
    assert.deepEqual(parseLokiError(cases.malformed_json?.body ?? '').rejections, []);
    assert.deepEqual(parseLabels('{a="b", c="d\\"e"}'), { a: 'b', c: 'd"e' });
    assert.equal(parseLabels('not labels'), undefined);
  });

  describe('the transport against a test upstream replaying them', () => {
    let up: TestUpstream;
    before(async () => {
      up = await new TestUpstream().start();
    });
    after(async () => {
      await up.close();
    });

    for (const name of partial) {
      it(`${name}: dead-letters exactly the lines Loki refused, everything else is stored once`, async () => {
        const c = cases[name];
        assert.ok(c?.request && c.stored_lines_by_query);
        const stored = new Set(c.stored_lines_by_query);
        const offenders = new Set(c.request.streams.flatMap((s) => s.values.map((v) => v[1])).filter((l) => !stored.has(l)));
        // Like Loki: any push holding an offending entry gets the captured body; the valid entries are kept.
        up.handler = (req: PushRequest): Reply => {
          const bad = req.entries.filter((e) => offenders.has(e.line));
          const good = req.entries.filter((e) => !offenders.has(e.line));
          return bad.length > 0 ? { status: 400, body: c.body, store: good } : { status: 204 };
        };
        const { dir, cleanup } = tempDir();
        const { t } = makeTransport(up, dir, { instance: `fx-${name}`, batchWaitMs: 0 });
        for (const s of c.request.streams) {
          for (const [ts, line, meta] of s.values) t.append({ level: s.stream.level ?? 'info', line, ts: BigInt(ts), meta, override: { ...s.stream } });
        }
        assert.equal(await t.flush(30_000), true);
        const kept = up.entries().filter((e) => e.labels.case !== undefined && c.request?.streams.some((s) => s.stream.case === e.labels.case && s.stream.instance === e.labels.instance));
        assert.deepEqual(new Set(kept.map((e) => e.line)), stored);
        const snap = t.snapshot();
        assert.equal(snap.dropped.rejected, offenders.size);
        assert.equal(snap.droppedTotal, offenders.size);
        const dl = join(dir, 'dead-letter.ndjson');
        assert.ok(existsSync(dl));
        const dead = readFileSync(dl, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { line: string; status: number; detail: string; reason: string });
        assert.deepEqual(new Set(dead.map((d) => d.line)), offenders);
        for (const d of dead) {
          assert.equal(d.status, 400);
          assert.equal(d.reason, 'rejected');
          assert.equal(d.detail, c.body.slice(0, 2048));
        }
        await t.shutdown(0);
        cleanup();
      });
    }

    it("the tenant 429 (Loki's real body, nothing stored): retried until accepted, nothing dropped", async () => {
      const c = cases.ingestion_rate_429;
      assert.ok(c);
      let n = 0;
      up.handler = () => (++n <= 2 ? { status: 429, body: c.body } : { status: 204 });
      const { dir, cleanup } = tempDir();
      const { t } = makeTransport(up, dir, { instance: 'fx-429', batchWaitMs: 0 });
      for (let i = 0; i < 20; i += 1) t.append({ level: 'info', line: `t${i}` });
      assert.equal(await t.flush(30_000), true);
      assert.equal(t.snapshot().retries.rate_limited, 2);
      assert.equal(t.snapshot().droppedTotal, 0);
      await t.shutdown(0);
      cleanup();
    });

    it("the per-stream 429 (Loki's real body): the stream is retried, nothing dropped; its streams are parsed", async () => {
      const c = cases.stream_rate_429;
      assert.ok(c?.request);
      const limited = parseLokiError(c.body).limitedStreams;
      assert.equal(limited[0]?.case, 'single');
      let n = 0;
      up.handler = () => (++n === 1 ? { status: 429, body: c.body } : { status: 204 });
      const { dir, cleanup } = tempDir();
      const { t } = makeTransport(up, dir, { instance: 'fx-429s', batchWaitMs: 0 });
      const s = c.request.streams[0];
      assert.ok(s);
      for (const [ts, line] of s.values) t.append({ level: 'info', line, ts: BigInt(ts), override: { ...s.stream, instance: 'fx-429s' } });
      assert.equal(await t.flush(30_000), true);
      assert.equal(up.entries().filter((e) => e.labels.instance === 'fx-429s').length, s.values.length);
      assert.equal(t.snapshot().droppedTotal, 0);
      await t.shutdown(0);
      cleanup();
    });

    it('a 400 that names no line (the edge, or a format we do not know) is bisected down to the refused line', async () => {
      up.handler = (req) => (req.entries.some((e) => e.line === 'poison') ? { status: 400, body: 'store label mismatch', store: req.entries.filter((e) => e.line !== 'poison') } : { status: 204 });
      const { dir, cleanup } = tempDir();
      const before = up.requests.length;
      const { t } = makeTransport(up, dir, { instance: 'fx-bisect', batchWaitMs: 0 });
      for (let i = 0; i < 64; i += 1) t.append({ level: 'info', line: i === 37 ? 'poison' : `ok ${i}` });
      assert.equal(await t.flush(30_000), true);
      assert.equal(t.snapshot().dropped.rejected, 1);
      assert.equal(up.entries().filter((e) => e.labels.instance === 'fx-bisect' && e.line.startsWith('ok ')).length, 63);
      assert.ok(up.requests.length - before <= 2 * 7 + 2, `${up.requests.length - before} requests`);
      await t.shutdown(0);
      cleanup();
    });

    it('gives up bisecting after maxBisectRequests and dead-letters the rest', async () => {
      up.handler = () => ({ status: 400, body: 'everything refused' });
      const { dir, cleanup } = tempDir();
      const { t } = makeTransport(up, dir, { instance: 'fx-giveup', batchWaitMs: 0, maxBisectRequests: 3 });
      for (let i = 0; i < 32; i += 1) t.append({ level: 'info', line: `x ${i}` });
      assert.equal(await t.flush(30_000), true);
      assert.equal(t.snapshot().dropped.rejected, 32);
      await t.shutdown(0);
      cleanup();
    });
  });
});
