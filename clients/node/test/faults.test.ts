import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { FakeClock, drive, realPause } from './helpers/fake-clock';
import { TestUpstream, appEntries } from './helpers/upstream';
import { makeTransport, tempDir } from './helpers/setup';

/** Fault injection on a fake clock: hours of outage run in seconds. */
describe('faults on a fake clock', () => {
  let up: TestUpstream;
  before(async () => {
    up = await new TestUpstream().start();
  });
  after(async () => {
    await up.close();
  });

  it('429 with Retry-After: waits at least that long before the next request, drops nothing', async () => {
    const { dir, cleanup } = tempDir();
    const clock = new FakeClock();
    const times: number[] = [];
    up.handler = () => {
      times.push(clock.now());
      return times.length === 1 ? { status: 429, body: 'Too Many Requests', headers: { 'Retry-After': '30' } } : { status: 204 };
    };
    const { t } = makeTransport(up, dir, { instance: 'ra-1', clock, random: () => 0.5, requestTimeoutMs: 3_600_000, batchWaitMs: 0 });
    for (let i = 0; i < 10; i += 1) t.append({ level: 'info', line: `l${i}` });
    assert.ok(await drive(clock, () => times.length >= 1, 5000));
    assert.ok(await drive(clock, () => times.length >= 2, 60_000, 500));
    const gap = (times[1] as number) - (times[0] as number);
    assert.ok(gap >= 30_000, `waited ${gap} ms`);
    // Above Retry-After plus the base jitter, the rest is the fake clock
    // stepping on (500 ms per real 2 ms) while the loopback round trip of the
    // retry is in flight: 32.5 s was seen on a loaded CI machine. A doubled
    // backoff or a second wait would be 60 s and more.
    assert.ok(gap <= 40_000, `waited ${gap} ms (Retry-After plus the base jitter and the test's 500 ms steps)`);
    assert.ok(await drive(clock, () => appEntries(up, 'ra-1').length === 10, 10_000));
    const s = t.snapshot();
    assert.equal(s.retries.rate_limited, 1);
    assert.equal(s.requests['429'], 1);
    assert.equal(s.droppedTotal, 0);
    assert.equal(s.breakerState, 'closed', '429 does not open the breaker');
    await t.shutdown(0);
    cleanup();
  });

  it('a Loki 429 for a stream: that stream goes again, the other streams are pushed on their own', async () => {
    const { dir, cleanup } = tempDir();
    const clock = new FakeClock();
    let n = 0;
    const seen: number[] = [];
    up.handler = (req) => {
      n += 1;
      seen.push(req.entries.length);
      if (n === 1) {
        const keep = req.entries.filter((e) => e.labels.level === 'warn');
        return {
          status: 429,
          store: keep,
          body: "Per stream rate limit exceeded (limit: 3MB/sec) while attempting to ingest for stream '{environment=\"test\", instance=\"ps-1\", level=\"info\", service=\"pos-backend\", service_name=\"pos-backend\", store=\"S001\"}' totaling 12345 bytes, consider splitting a stream via additional labels or contact your Loki administrator to see if the limit can be increased",
        };
      }
      return { status: 204 };
    };
    const { t } = makeTransport(up, dir, { instance: 'ps-1', clock, random: () => 0, requestTimeoutMs: 3_600_000, batchWaitMs: 0 });
    for (let i = 0; i < 5; i += 1) t.append({ level: 'info', line: `i${i}` });
    for (let i = 0; i < 3; i += 1) t.append({ level: 'warn', line: `w${i}` });
    assert.ok(await drive(clock, () => appEntries(up, 'ps-1').length === 8, 10_000));
    assert.deepEqual(seen.slice(0, 3), [5, 5, 3], 'one stream per push: info (429), info again, then warn');
    await t.shutdown(0);
    cleanup();
  });

  it('breaker: closed -> open after N failures, no request while open, half-open probe of one small batch, reopens doubled, closes on success', async () => {
    const { dir, cleanup } = tempDir();
    const clock = new FakeClock();
    let healthy = false;
    const log: { at: number; lines: number }[] = [];
    up.handler = (req) => {
      log.push({ at: clock.now(), lines: req.entries.length });
      return healthy ? { status: 204 } : { status: 503, body: 'no healthy upstream' };
    };
    const { t } = makeTransport(up, dir, {
      instance: 'brk-1', clock, random: () => 0, requestTimeoutMs: 3_600_000, batchWaitMs: 0,
      breakerFailures: 3, breakerOpenMs: 10_000, breakerMaxOpenMs: 40_000, probeLines: 5, backoffBaseMs: 100, backoffMaxMs: 100,
    });
    for (let i = 0; i < 50; i += 1) t.append({ level: 'info', line: `b${i}` });
    const states: string[] = ['closed'];
    // The open time is the transition's (fake) time: drive() notices it up to a step later.
    let openedAt = -1;
    t.on('breaker', (_from: string, to: string) => {
      states.push(to);
      if (to === 'open' && openedAt < 0) openedAt = clock.now();
    });
    const watch = (): void => undefined;
    assert.ok(await drive(clock, () => (watch(), t.snapshot().breakerState === 'open'), 5000, 10));
    assert.equal(log.length, 3);
    // Open: nothing is sent for openMs; lines still land in the spool.
    for (let i = 0; i < 20; i += 1) t.append({ level: 'info', line: `during-open-${i}` });
    assert.ok(await drive(clock, () => (watch(), log.length > 3), 20_000, 100));
    assert.ok((log[3]?.at as number) - openedAt >= 10_000, 'no request while open');
    assert.ok((log[3]?.lines as number) <= 5, 'the half-open probe is one small batch');
    // The probe failed: open again, for twice as long.
    assert.ok(await drive(clock, () => (watch(), log.length > 4), 60_000, 100));
    const reopenGap = (log[4]?.at as number) - (log[3]?.at as number);
    assert.ok(reopenGap >= 20_000, `reopened for ${reopenGap} ms`);
    healthy = true; // the 5th request (the second probe) failed; the third probe succeeds
    assert.ok(await drive(clock, () => (watch(), appEntries(up, 'brk-1').length === 70), 60_000, 100));
    watch();
    assert.deepEqual(states, ['closed', 'open', 'half_open', 'open', 'half_open', 'open', 'half_open', 'closed']);
    assert.ok(log.slice(5).some((r) => r.lines > 5), 'full batches after the breaker closed');
    assert.equal(t.snapshot().droppedTotal, 0);
    assert.match(t.prometheus(), /loki_transport_breaker_state\{[^}]*state="closed"\} 1/);
    await t.shutdown(0);
    cleanup();
  });

  it('a 2-hour WAN outage: 7,200 lines and the heartbeats spooled, bounded retries, then everything delivered oldest-first, no loss, no duplicate', async () => {
    const { dir, cleanup } = tempDir();
    const clock = new FakeClock();
    let down = true;
    let outageRequests = 0;
    up.handler = () => {
      if (down) {
        outageRequests += 1;
        return 'reset';
      }
      return { status: 204 };
    };
    const { t } = makeTransport(up, dir, {
      instance: 'wan-1', clock, requestTimeoutMs: 15_000, batchWaitMs: 1000, backoffBaseMs: 500, backoffMaxMs: 60_000,
      breakerFailures: 5, breakerOpenMs: 30_000, breakerMaxOpenMs: 300_000, heartbeatIntervalMs: 60_000, startupJitterMs: 10_000,
    });
    const levels = ['info', 'warn', 'error', 'debug'];
    for (let s = 0; s < 7200; s += 1) {
      t.append({ level: levels[s % 4] as string, line: `sale ${s}` });
      if (s % 10 === 9) {
        await clock.advance(10_000);
        await realPause(0);
      }
    }
    assert.ok(outageRequests > 5 && outageRequests < 200, `${outageRequests} requests during 2 h of outage`);
    const during = t.snapshot();
    assert.ok(during.spoolOldestAgeSeconds >= 7100, `oldest ${during.spoolOldestAgeSeconds} s`);
    assert.equal(during.droppedTotal, 0);
    assert.ok(['open', 'half_open'].includes(during.breakerState));
    down = false;
    assert.ok(await drive(clock, () => appEntries(up, 'wan-1').length === 7200, 900_000, 1000), `delivered ${appEntries(up, 'wan-1').length}`);
    assert.ok(await drive(clock, () => t.snapshot().spoolBytes === 0 || up.entries().filter((e) => e.line.includes('heartbeat') && e.labels.instance === 'wan-1').length >= 120, 60_000, 1000));
    const got = up.entries().filter((e) => e.labels.instance === 'wan-1');
    assert.equal(up.duplicates, 0);
    // Oldest first: within every stream, arrival order is timestamp order.
    const byStream = new Map<string, bigint[]>();
    for (const e of got) {
      const k = JSON.stringify(e.labels);
      byStream.set(k, [...(byStream.get(k) ?? []), BigInt(e.ts)]);
    }
    for (const ts of byStream.values()) for (let i = 1; i < ts.length; i += 1) assert.ok((ts[i] as bigint) > (ts[i - 1] as bigint));
    const beats = got.filter((e) => e.line.startsWith('{"type":"heartbeat"'));
    assert.ok(beats.length >= 120, `${beats.length} heartbeats`);
    const last = JSON.parse(beats[beats.length - 1]?.line ?? '{}') as Record<string, unknown>;
    assert.equal(last.dropped_total, 0);
    assert.equal(t.snapshot().droppedTotal, 0);
    await t.shutdown(0);
    cleanup();
  });

  it('clock skew: a wall clock stepping back keeps timestamps strictly increasing; the edge Date header gives the skew gauge', async () => {
    const { dir, cleanup } = tempDir();
    const clock = new FakeClock();
    up.handler = () => ({ status: 204, headers: { Date: new Date(clock.now() + 120_000).toUTCString() } });
    const { t } = makeTransport(up, dir, { instance: 'skew-1', clock, requestTimeoutMs: 3_600_000, batchWaitMs: 0 });
    for (let i = 0; i < 5; i += 1) t.append({ level: 'info', line: `before ${i}` });
    clock.set(clock.now() - 10 * 60_000); // NTP steps the clock back 10 minutes
    for (let i = 0; i < 5; i += 1) t.append({ level: 'info', line: `after ${i}` });
    assert.ok(await drive(clock, () => appEntries(up, 'skew-1').length === 10, 10_000));
    const ts = appEntries(up, 'skew-1').map((e) => BigInt(e.ts));
    for (let i = 1; i < ts.length; i += 1) assert.ok((ts[i] as bigint) > (ts[i - 1] as bigint));
    const s = t.snapshot();
    assert.equal(s.clockBackwardSteps, 1);
    assert.ok(Math.abs(s.clockSkewSeconds + 120) <= 1, `skew ${s.clockSkewSeconds}`);
    assert.match(t.prometheus(), /loki_transport_clock_skew_seconds\{[^}]*\} -12[01]/);
    await t.shutdown(0);
    cleanup();
  });

  it('start-up jitter: the first request waits a random share of startupJitterMs', async () => {
    const { dir, cleanup } = tempDir();
    const clock = new FakeClock();
    const start = clock.now();
    const times: number[] = [];
    up.handler = () => {
      times.push(clock.now());
      return { status: 204 };
    };
    const { t } = makeTransport(up, dir, { instance: 'jit-1', clock, random: () => 0.5, startupJitterMs: 10_000, requestTimeoutMs: 3_600_000, batchWaitMs: 0 });
    t.append({ level: 'info', line: 'first' });
    assert.ok(await drive(clock, () => times.length > 0, 20_000, 250));
    assert.ok((times[0] as number) - start >= 5000, `first request after ${(times[0] as number) - start} ms`);
    await t.shutdown(0);
    cleanup();
  });
});
