/**
 * `npm run bench`: @obs/loki-transport and winston-loki 6.1.7, each in a
 * process of its own, against the same local TEST UPSTREAM (a counting HTTP
 * server in a third process, not Loki), in one run. Prints figures; asserts
 * nothing about speed. BENCH_LINES (default 200000) and BENCH_OUTAGE_LINES
 * (default 1000000) size it.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';

const N = Number(process.env.BENCH_LINES ?? 200_000);
const M = Number(process.env.BENCH_OUTAGE_LINES ?? 1_000_000);

interface Result {
  kind: string;
  intoPerSec: number;
  deliveredPerSec: number | null;
  cpuMsPer1000: number;
  heapMiB: number;
  rssMiB: number;
  replayPerSec: number;
  replayed: number;
  replayFinished: boolean;
  outageLines: number;
  replayRequests: number;
  maxBodyBytes: number;
}

function run(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', '--max-old-space-size=8192', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${args.join(' ')} exited ${code}`))));
  });
}

async function main(): Promise<void> {
  const upstream = spawn(process.execPath, [join(__dirname, 'upstream.js')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve) => upstream.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
  try {
    console.log(`bench: ${N} lines with the test upstream up, then ${M} lines during an outage (503) and the replay; test upstream on 127.0.0.1:${port} (not Loki)`);
    const results: Result[] = [];
    for (const kind of ['ours', 'winston-loki']) {
      const out = await run([join(__dirname, 'client.js'), kind, String(port), String(N), String(M)]);
      results.push(JSON.parse(out.trim().split('\n').pop() ?? '{}') as Result);
    }
    const rows: [string, (r: Result) => string][] = [
      ['lines/s into the spool (winston-loki: its memory queue)', (r) => r.intoPerSec.toLocaleString('en-US')],
      ['lines/s delivered (log call to upstream)', (r) => (r.deliveredPerSec === null ? 'not all in 120 s' : r.deliveredPerSec.toLocaleString('en-US'))],
      ['CPU ms per 1,000 lines (client process)', (r) => r.cpuMsPer1000.toFixed(2)],
      [`heap MiB with ${M.toLocaleString('en-US')} lines held (outage)`, (r) => String(r.heapMiB)],
      [`RSS MiB with ${M.toLocaleString('en-US')} lines held (outage)`, (r) => String(r.rssMiB)],
      ['replay lines/s after the outage', (r) => `${r.replayPerSec.toLocaleString('en-US')}${r.replayFinished ? '' : ` (only ${r.replayed.toLocaleString('en-US')} of ${r.outageLines.toLocaleString('en-US')} in 180 s)`}`],
      ['push requests of the replay', (r) => String(r.replayRequests)],
      ['largest push body, bytes as sent (edge limit 4m)', (r) => r.maxBodyBytes.toLocaleString('en-US')],
    ];
    const names = ['@obs/loki-transport', 'winston-loki 6.1.7'];
    const w0 = Math.max(...rows.map((r) => r[0].length));
    const w = rows.map(([, f]) => Math.max(...results.map((r) => f(r).length), ...names.map((n) => n.length)));
    const width = Math.max(...w);
    console.log(`| ${'figure'.padEnd(w0)} | ${names.map((n) => n.padEnd(width)).join(' | ')} |`);
    console.log(`|${'-'.repeat(w0 + 2)}|${names.map(() => '-'.repeat(width + 2)).join('|')}|`);
    for (const [label, f] of rows) console.log(`| ${label.padEnd(w0)} | ${results.map((r) => f(r).padEnd(width)).join(' | ')} |`);
  } finally {
    upstream.kill('SIGTERM');
  }
}

void main();
