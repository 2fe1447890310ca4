import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TestUpstream, appEntries, type PushedEntry } from './helpers/upstream';
import { makeTransport, tempDir, waitFor } from './helpers/setup';

describe('kill -9', () => {
  let up: TestUpstream;
  before(async () => {
    up = await new TestUpstream().start();
  });
  after(async () => {
    await up.close();
  });

  it('mid-send and mid-logging in a child process: the restart replays everything, with the same timestamps', async () => {
    const { dir, cleanup } = tempDir();
    const spool = join(dir, 'spool');
    const firstTry = new Map<string, string>();
    up.handler = (req) => {
      for (const e of req.entries) firstTry.set(e.line, e.ts);
      return 'hang'; // the push is in flight when the child dies
    };
    const child = spawn(process.execPath, [join(__dirname, 'helpers', 'crash-child.js'), spool, up.url, '100000'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let logged = 0;
    child.stdout.on('data', (d: Buffer) => {
      for (const m of d.toString().matchAll(/logged (\d+)/g)) logged = Number(m[1]);
    });
    await waitFor(() => up.requests.length >= 1 && logged >= 2000, 20000, 'a push in flight and 2000 lines logged');
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    child.kill('SIGKILL');
    assert.equal(await exited, 'SIGKILL');
    const loggedBeforeKill = logged;
    assert.ok(loggedBeforeKill < 100000, 'killed while still logging');

    // Restart on the same spool, upstream healthy.
    up.handler = () => ({ status: 204 });
    const { t } = makeTransport(up, spool, { instance: 'crash-1', batchWaitMs: 0 });
    assert.equal(await t.flush(30000), true);
    const got = appEntries(up, 'crash-1');
    const lines = new Set(got.map((e: PushedEntry) => e.line));
    for (let i = 0; i < loggedBeforeKill; i += 1) assert.ok(lines.has(`crash ${i}`), `crash ${i} lost`);
    // Everything the restart sent is a prefix of the log order, without holes.
    assert.equal(lines.size, got.length);
    for (let i = 0; i < lines.size; i += 1) assert.ok(lines.has(`crash ${i}`), `hole at ${i}`);
    // The lines of the interrupted push went again with their original timestamps: Loki would collapse them.
    let same = 0;
    for (const e of got) if (firstTry.has(e.line)) {
      assert.equal(e.ts, firstTry.get(e.line));
      same += 1;
    }
    assert.ok(same > 0);
    assert.equal(t.snapshot().droppedTotal, 0);
    await t.shutdown(0);
    cleanup();
  });
});

describe('shutdown', () => {
  let up: TestUpstream;
  before(async () => {
    up = await new TestUpstream().start();
  });
  after(async () => {
    await up.close();
  });

  it('with a hung upstream: returns within its deadline, keeps the unsent lines on disk, the next start sends them', async () => {
    const { dir, cleanup } = tempDir();
    up.handler = () => 'hang';
    const { t } = makeTransport(up, dir, { instance: 'sd-1', batchWaitMs: 0, requestTimeoutMs: 60000 });
    for (let i = 0; i < 100; i += 1) t.append({ level: 'info', line: `sd ${i}` });
    await waitFor(() => up.requests.length > 0, 5000, 'a push in flight');
    const start = Date.now();
    const report = await t.shutdown(500);
    const took = Date.now() - start;
    // The hung push would hold it for requestTimeoutMs (60 s): returning long
    // before that proves the deadline, however loaded the machine is.
    assert.ok(took >= 450 && took < 15_000, `shutdown took ${took} ms (deadline 500 ms, hung push 60 s)`);
    assert.equal(report.drained, false);
    assert.ok(report.spoolBytes > 0);
    assert.equal(await t.shutdown(), report, 'idempotent');
    up.handler = () => ({ status: 204 });
    const again = makeTransport(up, dir, { instance: 'sd-1', batchWaitMs: 0 }).t;
    assert.equal(await again.flush(30_000), true);
    assert.equal(appEntries(up, 'sd-1').length, 100);
    const r2 = await again.shutdown(1000);
    assert.equal(r2.drained, true);
    cleanup();
  });

  it('lines logged after shutdown (later shutdown hooks) are written to disk and sent at the next start', async () => {
    const { dir, cleanup } = tempDir();
    up.handler = () => ({ status: 204 });
    const { t } = makeTransport(up, dir, { instance: 'sd-3', batchWaitMs: 0 });
    await t.shutdown(1000);
    t.append({ level: 'info', line: 'logged by onApplicationShutdown' });
    const next = makeTransport(up, dir, { instance: 'sd-3', batchWaitMs: 0 }).t;
    assert.equal(await next.flush(30_000), true);
    assert.deepEqual(appEntries(up, 'sd-3').map((e) => e.line), ['logged by onApplicationShutdown']);
    await next.shutdown(1000);
    cleanup();
  });

  it('with a healthy upstream: drains the spool before its deadline without waiting for fuller batches', async () => {
    const { dir, cleanup } = tempDir();
    up.handler = () => ({ status: 204 });
    const { t } = makeTransport(up, dir, { instance: 'sd-2', batchWaitMs: 60000 });
    for (let i = 0; i < 10; i += 1) t.append({ level: 'info', line: `sd2 ${i}` });
    const start = Date.now();
    const report = await t.shutdown(30_000);
    const took = Date.now() - start;
    // Waiting for a fuller batch would take batchWaitMs (60 s).
    assert.ok(took < 30_000, `shutdown took ${took} ms (batchWaitMs 60 s)`);
    assert.equal(report.drained, true);
    assert.equal(appEntries(up, 'sd-2').length, 10);
    cleanup();
  });
});
