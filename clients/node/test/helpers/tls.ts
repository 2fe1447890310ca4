import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** A throw-away test CA and a server certificate for `name`, made with openssl in `dir`; undefined without openssl. */
export function makeTestCa(dir: string, name = 'obs.test.internal'): { ca: Buffer; caPath: string; key: Buffer; cert: Buffer } | { skip: string } {
  try {
    const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
    run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=obs test CA']);
    run(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', `/CN=${name}`]);
    writeFileSync(join(dir, 'ext.cnf'), `subjectAltName=DNS:${name}\n`);
    run(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'ext.cnf']);
  } catch (err) {
    return { skip: `openssl cannot make a test CA here: ${(err as Error).message.split('\n')[0]}` };
  }
  return { ca: readFileSync(join(dir, 'ca.crt')), caPath: join(dir, 'ca.crt'), key: readFileSync(join(dir, 'server.key')), cert: readFileSync(join(dir, 'server.crt')) };
}
