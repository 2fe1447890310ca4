import 'reflect-metadata';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Controller, Get, Inject, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { INestApplication } from '@nestjs/common';
import winston from 'winston';
import { LOKI_TRANSPORT, LokiTransportModule } from '../src/nestjs';
import type { LokiTransport } from '../src/transport';
import { TestUpstream, appEntries } from './helpers/upstream';
import { tempDir, TOKEN } from './helpers/setup';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

describe('NestJS module (a real Nest app on express)', () => {
  let up: TestUpstream;
  let app: INestApplication;
  let base = '';
  let cleanup: () => void;
  let transport: LokiTransport;

  before(async () => {
    up = await new TestUpstream().start();
    const d = tempDir();
    cleanup = d.cleanup;
    const bundlePath = join(d.dir, 'S001.env');
    writeFileSync(bundlePath, `# store bundle\nSTORE_ID=S001\nSTORE_NAME="Store 001 Downtown"\nLOKI_URL=http://127.0.0.1:${up.port}\nLOKI_PUSH_URL=${up.url}\nLOKI_USERNAME=S001\nLOKI_PASSWORD=${TOKEN}\n`);

    @Controller()
    class SalesController {
      private readonly logger: winston.Logger;
      constructor(@Inject(LOKI_TRANSPORT) t: LokiTransport) {
        this.logger = winston.createLogger({ format: winston.format.json(), transports: [t] });
      }
      @Get('sale')
      sale(): string {
        this.logger.info('sale completed', { order_id: 'O-77', terminal_id: 'T1' });
        return 'ok';
      }
    }

    @Module({
      imports: [
        LokiTransportModule.forRoot({
          bundlePath, service: 'pos-backend', environment: 'test', instance: 'nest-1', spoolDir: join(d.dir, 'spool'),
          startupJitterMs: 0, batchWaitMs: 0, heartbeatIntervalMs: 0, shutdownTimeoutMs: 2000, requestTimeoutMs: 60_000, onError: () => undefined,
        }),
      ],
      controllers: [SalesController],
    })
    class AppModule {}

    app = await NestFactory.create(AppModule, { logger: false });
    await app.listen(0, '127.0.0.1');
    base = await app.getUrl();
    transport = app.get<LokiTransport>(LOKI_TRANSPORT);
  });

  after(async () => {
    await up.close();
    cleanup();
  });

  it('the app logs through the injected transport', async () => {
    const r = await fetch(`${base}/sale`);
    assert.equal(await r.text(), 'ok');
    assert.equal(await transport.flush(30_000), true);
    const e = appEntries(up, 'nest-1').find((x) => x.line.includes('sale completed'));
    assert.ok(e);
    assert.equal(e.labels.store, 'S001');
  });

  it('the relay route takes a browser batch (Nest parsed the JSON body)', async () => {
    const body = { v: 1, session: 'nest-session-1', batch: 1, sentAt: Date.now(), entries: [{ ts: String(BigInt(Date.now()) * 1_000_000n), level: 'warn', line: 'from the browser' }] };
    const r = await fetch(`${base}/logs/relay`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { accepted: 1, dropped: 0, duplicate: false });
    const bad = await fetch(`${base}/logs/relay`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ v: 9 }) });
    assert.equal(bad.status, 400);
    const empty = await fetch(`${base}/logs/relay`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}', signal: AbortSignal.timeout(3000) });
    assert.equal(empty.status, 400, 'an empty object the parser already read is answered, not waited for');
    assert.equal(await transport.flush(30_000), true);
    assert.ok(up.entries().some((e) => e.line === 'from the browser' && e.labels.service === 'pos-frontend'));
  });

  it('the metrics route serves the Prometheus text format', async () => {
    const r = await fetch(`${base}/metrics/loki-transport`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /text\/plain/);
    const text = await r.text();
    assert.match(text, /# TYPE loki_transport_sent_lines_total counter/);
    assert.match(text, /loki_transport_dropped_lines_total\{store="S001",service="pos-backend",instance="nest-1",reason="spool_full"\} 0/);
  });

  it('app.close() runs beforeApplicationShutdown: the transport stops within its deadline', async () => {
    up.handler = () => 'hang';
    transport.append({ level: 'error', line: 'unsent at shutdown' });
    const start = Date.now();
    await app.close();
    const took = Date.now() - start;
    // shutdownTimeoutMs is 2 s; the hung push alone would hold it for requestTimeoutMs (60 s).
    assert.ok(took >= 1500 && took < 15_000, `close took ${took} ms (shutdownTimeoutMs 2 s)`);
    const report = await transport.shutdown();
    assert.equal(report.drained, false, 'the unsent line stays on disk');
  });
});

describe('NestJS module: forRootAsync', () => {
  it('builds the transport from a factory and can leave the routes out', async () => {
    const up = await new TestUpstream().start();
    const d = tempDir();
    @Module({
      imports: [
        LokiTransportModule.forRootAsync({
          useFactory: () => ({
            bundle: { storeId: 'S002', storeName: undefined, lokiUrl: `http://127.0.0.1:${up.port}`, pushUrl: up.url, username: 'S002', password: TOKEN },
            service: 'pos-backend', instance: 'nest-2', spoolDir: d.dir, startupJitterMs: 0, batchWaitMs: 0, heartbeatIntervalMs: 0, onError: () => undefined,
          }),
          relay: false,
          metricsPath: false,
        }),
      ],
    })
    class AsyncModule {}
    const app = await NestFactory.create(AsyncModule, { logger: false });
    await app.init();
    const t = app.get<LokiTransport>(LOKI_TRANSPORT);
    t.append({ level: 'info', line: 'async' });
    assert.equal(await t.flush(30_000), true);
    assert.equal(appEntries(up, 'nest-2')[0]?.labels.store, 'S002');
    await app.close();
    assert.equal((await t.shutdown()).drained, true);
    await up.close();
    d.cleanup();
  });
});
