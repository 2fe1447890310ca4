export { PosLogger, createLogger } from './logger.js';
export type { PosLoggerOptions, Target } from './options.js';
export type { DeliveryEvent, LoggerStats, TabStats } from './stats.js';
export type { SpoolState, DropCounts, DropReason } from './spool-types.js';
export type { Context } from './entry.js';
export type { Level } from './levels.js';
