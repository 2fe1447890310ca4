import type { Context } from './entry.js';
import type { Level } from './levels.js';

/** The line on the browser's console too: console.debug/info/warn/error(message, error?, context?). */
export function toConsole(level: Level, message: string, error: unknown, hasError: boolean, context: Context | undefined): void {
  const args: unknown[] = [message];
  if (hasError) args.push(error);
  if (context !== undefined) args.push(context);
  try {
    console[level](...args);
  } catch {
    /* a console that throws is not our problem */
  }
}
