import 'reflect-metadata';
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Module } from '@nestjs/common';
import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { LokiTransport } from '@obs/loki-transport';
import { LOKI_TRANSPORT, type LokiModuleOptions, LokiTransportModule } from '@obs/loki-transport/nestjs';
import type { TestUpstream as TestUpstreamType } from '../../../node/dist/test/helpers/upstream.js';
import { serveStatic } from './static.js';

/** A made-up test credential of the backend's store bundle (not a secret). */
const TOKEN = 'test-token-not-a-secret-0123456789abcdefghijkl';

export interface RelayRequest {
  contentEncoding: string | undefined;
  contentType: string | undefined;
  bytes: number;
  /** The batch's identity and size, and the relay's answer. */
  key: string;
  entries: number;
  status: number;
  duplicate: boolean;
}

/** A store backend: a real NestJS app with @obs/loki-transport's module, also serving the POS test pages. */
export interface Backend {
  /** http://127.0.0.1:<port>: the store backend, and the origin of the POS page (same origin, no CORS). */
  url: string;
  transport: LokiTransport;
  /** Requests the relay route got. */
  relayed: RelayRequest[];
  /** Shuts the app down through NestJS's lifecycle (beforeApplicationShutdown: the transport's shutdown), then removes the spool. */
  close(): Promise<void>;
}

export interface RelayApp extends Backend {
  /** The transport's own test upstream, standing in for the edge behind the backend. */
  upstream: TestUpstreamType;
}

/** The transport's test upstream (clients/node's test helper, compiled by its build). */
async function loadTestUpstream(): Promise<typeof TestUpstreamType> {
  const require = createRequire(import.meta.url);
  const root = dirname(dirname(dirname(require.resolve('@obs/loki-transport'))));
  const mod = (await import(pathToFileURL(join(root, 'dist', 'test', 'helpers', 'upstream.js')).href)) as { TestUpstream: typeof TestUpstreamType };
  return mod.TestUpstream;
}

/**
 * The store backend: a real NestJS (express) app with
 * `LokiTransportModule.forRoot(options)` of @obs/loki-transport (its relay
 * route POST /logs/relay, its disk spool in `options.spoolDir`, removed on
 * close). It also serves the POS test pages, so the page and the relay share
 * an origin.
 */
export async function startBackend(options: LokiModuleOptions & { spoolDir: string }): Promise<Backend> {
  class AppModule {}
  Module({ imports: [LokiTransportModule.forRoot(options)] })(AppModule);
  let app: INestApplication;
  try {
    app = await NestFactory.create(AppModule, { logger: false, forceCloseConnections: true });
  } catch (err) {
    rmSync(options.spoolDir, { recursive: true, force: true });
    throw err;
  }
  const relayed: RelayRequest[] = [];
  app.use((req: IncomingMessage, res: ServerResponse, next: () => void) => {
    if (req.method === 'POST' && req.url?.startsWith('/logs/relay')) {
      const r: RelayRequest = {
        contentEncoding: typeof req.headers['content-encoding'] === 'string' ? req.headers['content-encoding'] : undefined,
        contentType: req.headers['content-type'],
        bytes: Number(req.headers['content-length'] ?? 0),
        key: '', entries: 0, status: 0, duplicate: false,
      };
      relayed.push(r);
      const body = (): { session?: string; batch?: number; entries?: unknown[] } | undefined => (req as IncomingMessage & { body?: { session?: string; batch?: number; entries?: unknown[] } }).body;
      const end = res.end.bind(res) as (chunk?: unknown) => ServerResponse;
      (res as { end: (chunk?: unknown) => ServerResponse }).end = (chunk?: unknown) => {
        const b = body();
        r.key = `${b?.session ?? '?'}:${b?.batch ?? '?'}`;
        r.entries = b?.entries?.length ?? 0;
        r.status = res.statusCode;
        r.duplicate = typeof chunk === 'string' && chunk.includes('"duplicate":true');
        return end(chunk);
      };
      next();
      return;
    }
    void serveStatic(req, res).then((done) => {
      if (!done) next();
    });
  });
  try {
    await app.listen(0, '127.0.0.1');
  } catch (err) {
    await app.close().catch(() => undefined);
    rmSync(options.spoolDir, { recursive: true, force: true });
    throw err;
  }
  const url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
  const transport = app.get<LokiTransport>(LOKI_TRANSPORT);
  return {
    url,
    transport,
    relayed,
    close: async () => {
      try {
        await app.close();
      } finally {
        rmSync(options.spoolDir, { recursive: true, force: true });
      }
    },
  };
}

/** The relay tests' backend: startBackend pushing to the transport's test upstream. */
export async function startRelayApp(): Promise<RelayApp> {
  const TestUpstream = await loadTestUpstream();
  const upstream = await new TestUpstream().start();
  let backend: Backend;
  try {
    backend = await startBackend({
      bundle: { storeId: 'S001', storeName: 'Store 001', lokiUrl: `http://127.0.0.1:${upstream.port}`, pushUrl: upstream.url, username: 'S001', password: TOKEN },
      service: 'pos-backend', environment: 'test', instance: 'relay-test-1', spoolDir: mkdtempSync(join(tmpdir(), 'pos-logger-relay-')),
      startupJitterMs: 0, batchWaitMs: 20, heartbeatIntervalMs: 0, backoffBaseMs: 20, backoffMaxMs: 200, onError: () => undefined,
    });
  } catch (err) {
    await upstream.close();
    throw err;
  }
  return {
    ...backend,
    upstream,
    close: async () => {
      await backend.close();
      await upstream.close();
    },
  };
}
