/**
 * The test page's script (runs in Chromium). Query string:
 *   config=<JSON of PosLoggerOptions>  make the logger at load (onDelivery records into window.deliveries)
 *   log=<n>&prefix=<p>&level=<l>       then log n lines "<p> seq=<i>"
 *   go=<url>                           then navigate there at once (the unload test)
 * window.L is the module (the built dist/pos-logger.js), window.logger the logger.
 */
import type * as Api from '../../src/index.js';
import type { TestWindow } from './types.js';

const w = window as unknown as TestWindow;
w.deliveries = [];
w.L = (await import(String('/pos-logger.js'))) as typeof Api;
const q = new URLSearchParams(location.search);
const config = q.get('config');
if (config !== null) {
  const options = JSON.parse(config) as Api.PosLoggerOptions;
  w.logger = w.L.createLogger({ ...options, onDelivery: (e) => w.deliveries.push(e) });
  const n = Number(q.get('log') ?? 0);
  const prefix = q.get('prefix') ?? 'line';
  const level = (q.get('level') ?? 'info') as Api.Level;
  for (let i = 0; i < n; i += 1) w.logger[level === 'error' ? 'warn' : level](`${prefix} seq=${i}`, { order_id: `O-${i}` });
  const go = q.get('go');
  if (go !== null) location.href = go;
}
w.ready = true;
