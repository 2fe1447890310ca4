import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';

/**
 * A real Loki for the optional tests: unzipped from the artifacts directory
 * named by OBS_REAL_ARTIFACTS_DIR (loki-linux-amd64.zip, as the loki role
 * uses it), run on 127.0.0.1 with a config of its own in a temporary
 * directory, stopped after. Never part of the repository.
 */
export function realLokiZip(): { zip: string } | { skip: string } {
  const dir = process.env.OBS_REAL_ARTIFACTS_DIR;
  if (!dir) return { skip: 'OBS_REAL_ARTIFACTS_DIR is not set (a directory holding loki-linux-amd64.zip); the real-Loki test needs it' };
  const zip = join(dir, 'loki-linux-amd64.zip');
  if (!existsSync(zip)) return { skip: `${zip} does not exist` };
  return { zip };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export interface RealLoki {
  url: string;
  stop: () => Promise<void>;
  query: (logql: string, startNs: bigint, endNs: bigint) => Promise<{ labels: Record<string, string>; values: [string, string][] }[]>;
  instant: (logql: string) => Promise<{ metric: Record<string, string>; value: [number, string] }[]>;
}

export async function startRealLoki(zip: string, workDir: string, maxLineSize = 256): Promise<RealLoki> {
  const bin = join(workDir, 'loki-linux-amd64');
  try {
    execFileSync('unzip', ['-o', '-q', zip, '-d', workDir]);
  } catch {
    execFileSync('python3', ['-m', 'zipfile', '-e', zip, workDir]);
  }
  chmodSync(bin, 0o755);
  const http = await freePort();
  const grpc = await freePort();
  const data = join(workDir, 'data');
  mkdirSync(data, { recursive: true });
  const config = `auth_enabled: false
server:
  http_listen_address: 127.0.0.1
  http_listen_port: ${http}
  grpc_listen_address: 127.0.0.1
  grpc_listen_port: ${grpc}
  log_level: warn
common:
  instance_addr: 127.0.0.1
  path_prefix: ${data}
  storage:
    filesystem:
      chunks_directory: ${data}/chunks
      rules_directory: ${data}/rules
  replication_factor: 1
  ring:
    kvstore:
      store: inmemory
schema_config:
  configs:
    - from: 2024-01-01
      store: tsdb
      object_store: filesystem
      schema: v13
      index:
        prefix: index_
        period: 24h
limits_config:
  reject_old_samples: true
  reject_old_samples_max_age: 168h
  max_line_size: ${maxLineSize}
  allow_structured_metadata: true
analytics:
  reporting_enabled: false
`;
  writeFileSync(join(workDir, 'loki.yml'), config);
  const child: ChildProcess = spawn(bin, [`-config.file=${join(workDir, 'loki.yml')}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const base = `http://127.0.0.1:${http}`;
  const deadline = Date.now() + 90_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`Loki exited: ${stderr}`);
    try {
      const r = await fetch(`${base}/ready`);
      if (r.status === 200) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`Loki not ready after 90 s: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  return {
    url: `${base}/loki/api/v1/push`,
    stop: async () => {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    },
    query: async (logql, startNs, endNs) => {
      const q = new URLSearchParams({ query: logql, start: startNs.toString(), end: endNs.toString(), limit: '5000', direction: 'forward' });
      const r = await fetch(`${base}/loki/api/v1/query_range?${q}`);
      const body = (await r.json()) as { data: { result: { stream: Record<string, string>; values: [string, string][] }[] } };
      return body.data.result.map((s) => ({ labels: s.stream, values: s.values }));
    },
    instant: async (logql) => {
      const q = new URLSearchParams({ query: logql });
      const r = await fetch(`${base}/loki/api/v1/query?${q}`);
      const body = (await r.json()) as { data: { result: { metric: Record<string, string>; value: [number, string] }[] } };
      return body.data.result;
    },
  };
}
