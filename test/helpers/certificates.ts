import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestPki } from './tls.js';

export interface IssuedCertificate {
  cert: string;
  key: string;
}

/**
 * Another certificate signed by the throwaway CA of `pki` (createTestPki), written into its
 * directory as `<name>.crt` and `<name>.key`: `subject` is openssl's -subj (`/CN=...`),
 * `extensions` the lines of its -extfile.
 */
export function issueCertificate(
  pki: TestPki,
  name: string,
  options: { subject: string; extensions: string },
): IssuedCertificate {
  const run = (args: string[]) => {
    try {
      execFileSync('openssl', args, { cwd: pki.dir, stdio: 'pipe' });
    } catch (err) {
      throw new Error(`openssl ${args[0]} failed: ${String(err)}`);
    }
  };
  const curve = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  run(['req', ...curve, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', options.subject]);
  writeFileSync(join(pki.dir, `${name}.ext`), options.extensions);
  run([
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    `${name}.crt`,
    '-extfile',
    `${name}.ext`,
    '-days',
    '1',
  ]);
  return { cert: join(pki.dir, `${name}.crt`), key: join(pki.dir, `${name}.key`) };
}

/** A client certificate (mTLS) from the test CA whose subject CN is `commonName`. */
export function clientCertificate(pki: TestPki, commonName: string): IssuedCertificate {
  const name = `client-${commonName.replace(/[^A-Za-z0-9_-]/g, '_')}`;
  return issueCertificate(pki, name, {
    subject: `/CN=${commonName}`,
    extensions: 'extendedKeyUsage=clientAuth\n',
  });
}
