/**
 * Child process for the kill -9 test: logs `count` lines in chunks through a
 * transport pointed at the parent's test upstream, printing how many are
 * logged (each count is printed once the turn of its log calls has ended, i.e. after the
 * spool's end-of-turn write), and then
 * keeps running until killed.
 */
import { LokiTransport } from '../../src/transport';

const [spoolDir, url, countText] = process.argv.slice(2) as [string, string, string];
const count = Number(countText);
const t = new LokiTransport({
  bundle: { storeId: 'S001', storeName: undefined, lokiUrl: url, pushUrl: url, username: 'S001', password: 'crash-test-token-crash-test-token-0000' },
  service: 'pos-backend', environment: 'test', instance: 'crash-1', spoolDir,
  startupJitterMs: 0, batchWaitMs: 0, batchMaxLines: 200, heartbeatIntervalMs: 0, requestTimeoutMs: 600_000,
  onError: () => undefined,
});
let i = 0;
const chunk = (): void => {
  for (let k = 0; k < 100 && i < count; k += 1, i += 1) t.append({ level: 'info', line: `crash ${i}` });
  // The spool writes a turn's records when the turn ends (a microtask): report the count after that,
  // or a SIGKILL between the report and the write loses the chunk the parent was told about.
  const n = i;
  setImmediate(() => process.stdout.write(`logged ${n}\n`));
  if (i < count) setTimeout(chunk, 5);
};
chunk();
setInterval(() => undefined, 1000);
