import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TestCert {
  caPath: string;
  ca: Buffer;
  key: Buffer;
  cert: Buffer;
  /** base64 SHA-256 of the server certificate's SubjectPublicKeyInfo (Chromium's --ignore-certificate-errors-spki-list). */
  spki: string;
}

/** base64 SHA-256 of a PEM certificate's public key (SPKI), as Chromium pins it. */
export function spkiHash(pem: Buffer | string): string {
  const der = new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('base64');
}

/** A throw-away test CA (made once per dir) and a server certificate for `names`, with openssl. */
export function makeCert(dir: string, label: string, names: string[]): TestCert {
  const run = (args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  };
  try {
    readFileSync(join(dir, 'ca.crt'));
  } catch {
    run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=pos-logger test CA']);
  }
  run(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${label}.key`, '-out', `${label}.csr`, '-subj', `/CN=${names[0] ?? label}`]);
  writeFileSync(join(dir, `${label}.cnf`), `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}\n`);
  run(['x509', '-req', '-in', `${label}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${label}.crt`, '-days', '2', '-extfile', `${label}.cnf`]);
  const cert = readFileSync(join(dir, `${label}.crt`));
  return { caPath: join(dir, 'ca.crt'), ca: readFileSync(join(dir, 'ca.crt')), key: readFileSync(join(dir, `${label}.key`)), cert, spki: spkiHash(cert) };
}
