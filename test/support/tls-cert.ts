// A self-signed certificate for 127.0.0.1 that this test process trusts, for HTTPS backends
// in tests (made with openssl, which .ci/run installs; node --test runs each file in a process
// of its own, so trusting it changes no other file's run).

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { tempDir } from './temp-dir.ts';

let made: { cert: string; key: string } | undefined;

/** The certificate and key (PEM), trusted by this process's TLS clients (undici's included) from now on. */
export function trustedCert(): { cert: string; key: string } {
  if (made !== undefined) return made;
  const dir = tempDir('fabric-backend-tls-');
  const cert = join(dir, 'backend.crt');
  const key = join(dir, 'backend.key');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert,
    '-days', '2', '-subj', '/CN=fabric-test-backend', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { stdio: 'ignore' });
  made = { cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8') };
  tls.setDefaultCACertificates([...tls.getCACertificates('default'), made.cert]);
  return made;
}
