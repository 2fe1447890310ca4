export { LokiTransport, type ShutdownReport, type RawEntry } from './transport';
export { type LokiTransportOptions, DEFAULTS, DEFAULT_METADATA_KEYS, DEFAULT_LEVEL_PRIORITY } from './options';
export { loadBundle, parseEnvFile, bundleFromEnv, BundleError, type StoreBundle } from './bundle';
export { BrowserRelay, createRelayHandler, type RelayOptions, type RelayReply } from './relay';
export { TransportMetrics, DROP_REASONS, RETRY_REASONS, type MetricsSnapshot, type DropReason, type RetryReason } from './metrics';
export { systemClock, type Clock, type TimerHandle } from './clock';
export { buildPushBody } from './shipper';
export { parseLokiError, isRejected, type Rejection } from './loki-errors';
export { Spool, SpoolLockedError, type SpoolEntry } from './spool';
