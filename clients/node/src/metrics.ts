/**
 * The transport's own metrics: plain counters and gauges, rendered in the
 * Prometheus text exposition format (version 0.0.4) and summarised in the
 * heartbeat line. No dependency on a metrics library.
 */
export const DROP_REASONS = ['spool_full', 'disk_full', 'rejected', 'too_large', 'corrupt'] as const;
export type DropReason = (typeof DROP_REASONS)[number];

export const RETRY_REASONS = ['rate_limited', 'server_error', 'timeout', 'network', 'auth'] as const;
export type RetryReason = (typeof RETRY_REASONS)[number];

export interface MetricsSnapshot {
  sent: number;
  sentBytes: number;
  requests: Record<string, number>;
  dropped: Record<DropReason, number>;
  droppedTotal: number;
  droppedByLevel: Record<string, number>;
  retries: Record<RetryReason, number>;
  retriesTotal: number;
  spoolBytes: number;
  spoolOldestAgeSeconds: number;
  breakerState: string;
  clockSkewSeconds: number;
  clockBackwardSteps: number;
  relayAccepted: number;
  relayRefused: number;
}

function zero<K extends string>(keys: readonly K[]): Record<K, number> {
  const out = {} as Record<K, number>;
  for (const key of keys) out[key] = 0;
  return out;
}

export class TransportMetrics {
  sent = 0;
  sentBytes = 0;
  readonly requests: Record<string, number> = {};
  readonly dropped = zero(DROP_REASONS);
  readonly droppedByLevel: Record<string, number> = {};
  readonly retries = zero(RETRY_REASONS);
  relayAccepted = 0;
  relayRefused = 0;
  /** Filled in by the transport when a snapshot is taken. */
  gauges: () => { spoolBytes: number; spoolOldestAgeSeconds: number; breakerState: string; clockSkewSeconds: number; clockBackwardSteps: number } =
    () => ({ spoolBytes: 0, spoolOldestAgeSeconds: 0, breakerState: 'closed', clockSkewSeconds: 0, clockBackwardSteps: 0 });

  drop(reason: DropReason, level: string, count = 1): void {
    if (count <= 0) return;
    this.dropped[reason] += count;
    this.droppedByLevel[level] = (this.droppedByLevel[level] ?? 0) + count;
  }

  retry(reason: RetryReason): void {
    this.retries[reason] += 1;
  }

  request(code: string): void {
    this.requests[code] = (this.requests[code] ?? 0) + 1;
  }

  snapshot(): MetricsSnapshot {
    const g = this.gauges();
    return {
      sent: this.sent,
      sentBytes: this.sentBytes,
      requests: { ...this.requests },
      dropped: { ...this.dropped },
      droppedTotal: Object.values(this.dropped).reduce((a, b) => a + b, 0),
      droppedByLevel: { ...this.droppedByLevel },
      retries: { ...this.retries },
      retriesTotal: Object.values(this.retries).reduce((a, b) => a + b, 0),
      relayAccepted: this.relayAccepted,
      relayRefused: this.relayRefused,
      ...g,
    };
  }

  /** Prometheus text format. `labels` (e.g. store, service, instance) are put on every sample. */
  prometheus(labels: Record<string, string> = {}): string {
    const s = this.snapshot();
    const base = Object.entries(labels);
    const fmt = (extra: Record<string, string> = {}): string => {
      const all = [...base, ...Object.entries(extra)];
      if (all.length === 0) return '';
      return `{${all.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')}}`;
    };
    const out: string[] = [];
    const family = (name: string, type: 'counter' | 'gauge', help: string, samples: [Record<string, string>, number][]): void => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [extra, value] of samples) out.push(`${name}${fmt(extra)} ${formatNumber(value)}`);
    };
    family('loki_transport_sent_lines_total', 'counter', 'Log lines Loki acknowledged.', [[{}, s.sent]]);
    family('loki_transport_sent_bytes_total', 'counter', 'Uncompressed bytes of acknowledged push bodies.', [[{}, s.sentBytes]]);
    family('loki_transport_requests_total', 'counter', 'Push requests by HTTP status (or "error" for network errors and timeouts).',
      Object.entries(s.requests).sort().map(([code, n]) => [{ code }, n]));
    family('loki_transport_dropped_lines_total', 'counter', 'Log lines that will never reach Loki, by reason.',
      DROP_REASONS.map((reason) => [{ reason }, s.dropped[reason]]));
    family('loki_transport_dropped_lines_by_level_total', 'counter', 'Log lines that will never reach Loki, by level.',
      Object.entries(s.droppedByLevel).sort().map(([level, n]) => [{ level }, n]));
    family('loki_transport_retries_total', 'counter', 'Push requests retried, by reason.',
      RETRY_REASONS.map((reason) => [{ reason }, s.retries[reason]]));
    family('loki_transport_spool_bytes', 'gauge', 'Bytes waiting in the disk spool.', [[{}, s.spoolBytes]]);
    family('loki_transport_spool_oldest_age_seconds', 'gauge', 'Age of the oldest unsent line in the spool (0 when empty).', [[{}, s.spoolOldestAgeSeconds]]);
    family('loki_transport_breaker_state', 'gauge', 'Circuit breaker state: 1 for the current state.',
      ['closed', 'open', 'half_open', 'auth_paused'].map((state) => [{ state }, s.breakerState === state ? 1 : 0]));
    family('loki_transport_clock_skew_seconds', 'gauge', 'Local clock minus the edge\'s Date header, seconds (last response).', [[{}, s.clockSkewSeconds]]);
    family('loki_transport_clock_backward_steps_total', 'counter', 'Times the wall clock went backwards at a log call.', [[{}, s.clockBackwardSteps]]);
    family('loki_transport_relay_lines_total', 'counter', 'Browser lines received by the relay route, by outcome.',
      [[{ outcome: 'accepted' }, s.relayAccepted], [{ outcome: 'refused' }, s.relayRefused]]);
    return `${out.join('\n')}\n`;
  }
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function formatNumber(value: number): string {
  return Number.isFinite(value) ? String(value) : '0';
}
