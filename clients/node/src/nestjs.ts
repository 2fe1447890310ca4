import 'reflect-metadata';
import {
  Controller, Get, Global, Inject, Injectable, Module, Post, Req, Res,
  type BeforeApplicationShutdown, type DynamicModule, type Provider, type Type,
} from '@nestjs/common';
import type { IncomingMessage } from 'node:http';
import { BrowserRelay, type RelayOptions } from './relay';
import { LokiTransport } from './transport';
import type { LokiTransportOptions } from './options';

/** Injection token of the LokiTransport instance. */
export const LOKI_TRANSPORT = 'OBS_LOKI_TRANSPORT';
/** Injection token of the BrowserRelay (when the relay route is on). */
export const LOKI_RELAY = 'OBS_LOKI_RELAY';
const MODULE_OPTIONS = 'OBS_LOKI_MODULE_OPTIONS';

export interface LokiModuleOptions extends LokiTransportOptions {
  /** The browser relay route (POST). false: no route. Default: { path: 'logs/relay' }. */
  relay?: (RelayOptions & { path?: string }) | false;
  /** GET route with the transport's metrics (Prometheus text). false: none. Default: 'metrics/loki-transport'. */
  metricsPath?: string | false;
}

export interface LokiModuleAsyncOptions {
  imports?: DynamicModule['imports'];
  inject?: (string | symbol | Type<unknown>)[];
  useFactory: (...args: never[]) => LokiTransportOptions | Promise<LokiTransportOptions>;
  /** Routes are fixed at module definition, so they are given here, not by the factory. */
  relay?: (RelayOptions & { path?: string }) | false;
  metricsPath?: string | false;
}

/** Calls the transport's shutdown (deadline: shutdownTimeoutMs) in NestJS's own shutdown sequence. */
@Injectable()
export class LokiShutdownHook implements BeforeApplicationShutdown {
  constructor(@Inject(LOKI_TRANSPORT) private readonly transport: LokiTransport) {}

  async beforeApplicationShutdown(): Promise<void> {
    await this.transport.shutdown();
  }
}

interface ReplyLike {
  status?: (code: number) => ReplyLike;
  code?: (code: number) => ReplyLike;
  setHeader?: (name: string, value: string) => unknown;
  header?: (name: string, value: string) => unknown;
  send: (body: string) => unknown;
}

function send(res: ReplyLike, status: number, headers: Record<string, string>, body: string): void {
  const r = typeof res.code === 'function' ? res.code(status) : typeof res.status === 'function' ? res.status(status) : res;
  for (const [k, v] of Object.entries(headers)) {
    if (typeof r.header === 'function') r.header(k, v);
    else r.setHeader?.(k, v);
  }
  r.send(body);
}

function routes(relayPath: string | undefined, metricsPath: string | undefined): Type<unknown>[] {
  const out: Type<unknown>[] = [];
  if (relayPath !== undefined) {
    @Controller()
    class LokiRelayController {
      constructor(@Inject(LOKI_RELAY) private readonly relay: BrowserRelay) {}

      @Post(relayPath)
      async relayLogs(@Req() req: IncomingMessage & { body?: unknown; raw?: IncomingMessage }, @Res() res: ReplyLike): Promise<void> {
        const raw = req.raw ?? req;
        const r = await this.relay.handleRaw(raw, req.body);
        send(res, r.status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', ...r.headers }, JSON.stringify(r.body));
      }
    }
    out.push(LokiRelayController);
  }
  if (metricsPath !== undefined) {
    @Controller()
    class LokiMetricsController {
      constructor(@Inject(LOKI_TRANSPORT) private readonly transport: LokiTransport) {}

      @Get(metricsPath)
      metrics(@Res() res: ReplyLike): void {
        send(res, 200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' }, this.transport.prometheus());
      }
    }
    out.push(LokiMetricsController);
  }
  return out;
}

function relayProviders(relay: (RelayOptions & { path?: string }) | false | undefined): { providers: Provider[]; path: string | undefined } {
  if (relay === false) return { providers: [], path: undefined };
  const { path = 'logs/relay', ...relayOptions } = relay ?? {};
  return {
    path,
    providers: [{ provide: LOKI_RELAY, inject: [LOKI_TRANSPORT], useFactory: (t: LokiTransport) => new BrowserRelay(t, relayOptions) }],
  };
}

/**
 * `LokiTransportModule.forRoot({ bundlePath, service, spoolDir })` makes the
 * transport injectable (LOKI_TRANSPORT) for the app's winston logger, adds the
 * relay and metrics routes, and shuts the transport down in
 * beforeApplicationShutdown (enable NestJS's shutdown hooks in main.ts).
 */
@Global()
@Module({})
export class LokiTransportModule {
  static forRoot(options: LokiModuleOptions): DynamicModule {
    const { relay, metricsPath, ...transportOptions } = options;
    const r = relayProviders(relay);
    const metrics = metricsPath === false ? undefined : (metricsPath ?? 'metrics/loki-transport');
    return {
      module: LokiTransportModule,
      global: true,
      providers: [{ provide: LOKI_TRANSPORT, useFactory: () => new LokiTransport(transportOptions) }, LokiShutdownHook, ...r.providers],
      controllers: routes(r.path, metrics),
      exports: [LOKI_TRANSPORT, ...(r.path !== undefined ? [LOKI_RELAY] : [])],
    };
  }

  static forRootAsync(options: LokiModuleAsyncOptions): DynamicModule {
    const r = relayProviders(options.relay);
    const metrics = options.metricsPath === false ? undefined : (options.metricsPath ?? 'metrics/loki-transport');
    return {
      module: LokiTransportModule,
      global: true,
      imports: options.imports ?? [],
      providers: [
        { provide: MODULE_OPTIONS, inject: options.inject ?? [], useFactory: options.useFactory },
        { provide: LOKI_TRANSPORT, inject: [MODULE_OPTIONS], useFactory: (o: LokiTransportOptions) => new LokiTransport(o) },
        LokiShutdownHook,
        ...r.providers,
      ],
      controllers: routes(r.path, metrics),
      exports: [LOKI_TRANSPORT, ...(r.path !== undefined ? [LOKI_RELAY] : [])],
    };
  }
}
