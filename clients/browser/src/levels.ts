/** Log levels, their order, and their class for the spool's byte cap. */
export type Level = 'debug' | 'info' | 'warn' | 'error';

export const LEVELS: readonly Level[] = ['debug', 'info', 'warn', 'error'];

const ORDER: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** Spool class (as the Node transport's): debug 0, info 1, warn and error 2 (never dropped by the cap). */
export type SpoolClass = 0 | 1 | 2;

export function isLevel(v: unknown): v is Level {
  return typeof v === 'string' && v in ORDER;
}

export function atLeast(level: Level, threshold: Level): boolean {
  return ORDER[level] >= ORDER[threshold];
}

export function spoolClass(level: Level): SpoolClass {
  return level === 'debug' ? 0 : level === 'info' ? 1 : 2;
}
