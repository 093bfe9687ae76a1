// ECDSA P-256 certificates for the bench, made with the openssl CLI so the
// bench does not depend on the gateway's own PKI code. One CA (path length 0)
// and leaves with exactly one SPIFFE URI SAN and the EKU each role needs.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const CLUSTER = 'bench';

const LEAVES = [
  { name: 'gw', uri: `spiffe://${CLUSTER}/gateway`, eku: 'serverAuth', ip: true },
  { name: 'client', uri: `spiffe://${CLUSTER}/client/bench`, eku: 'clientAuth' },
  { name: 'scheduler', uri: `spiffe://${CLUSTER}/scheduler`, eku: 'serverAuth,clientAuth', ip: true },
  { name: 'worker-w1', uri: `spiffe://${CLUSTER}/worker/w1`, eku: 'serverAuth,clientAuth', ip: true },
  { name: 'worker-w2', uri: `spiffe://${CLUSTER}/worker/w2`, eku: 'serverAuth,clientAuth', ip: true },
];

function openssl(args, cwd) {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function genKey(dir, file) {
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file], dir);
}

/**
 * Writes ca.pem, <leaf>.pem, <leaf>-key.pem and gw-combined.pem (haproxy's
 * cert+key bundle) into dir; returns absolute paths. Reuses a complete set.
 */
export function ensureCerts(dir) {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const paths = { dir, ca: join(dir, 'ca.pem'), caKey: join(dir, 'ca-key.pem'), combined: join(dir, 'gw-combined.pem') };
  for (const l of LEAVES) {
    paths[l.name] = { cert: join(dir, `${l.name}.pem`), key: join(dir, `${l.name}-key.pem`), uri: l.uri };
  }
  if (existsSync(paths.combined) && LEAVES.every((l) => existsSync(paths[l.name].cert))) return paths;

  genKey(dir, 'ca-key.pem');
  writeFileSync(
    join(dir, 'ca.cnf'),
    [
      '[req]', 'distinguished_name = dn', 'x509_extensions = v3_ca', 'prompt = no',
      '[dn]', `CN = bench cluster CA`,
      '[v3_ca]', 'basicConstraints = critical, CA:TRUE, pathlen:0', 'keyUsage = critical, keyCertSign, cRLSign',
      'subjectKeyIdentifier = hash',
    ].join('\n'),
  );
  openssl(['req', '-new', '-x509', '-key', 'ca-key.pem', '-config', 'ca.cnf', '-days', '30', '-out', 'ca.pem'], dir);

  let serial = 0x1000;
  for (const l of LEAVES) {
    genKey(dir, `${l.name}-key.pem`);
    const san = [`URI:${l.uri}`, ...(l.ip ? ['IP:127.0.0.1', 'DNS:localhost'] : [])].join(', ');
    writeFileSync(
      join(dir, `${l.name}.cnf`),
      [
        '[v3]', 'basicConstraints = critical, CA:FALSE', 'keyUsage = critical, digitalSignature',
        `extendedKeyUsage = ${l.eku}`, `subjectAltName = ${san}`, 'authorityKeyIdentifier = keyid',
      ].join('\n'),
    );
    openssl(['req', '-new', '-key', `${l.name}-key.pem`, '-subj', `/CN=${l.name}`, '-out', `${l.name}.csr`], dir);
    openssl([
      'x509', '-req', '-in', `${l.name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca-key.pem', '-set_serial', String(serial++),
      '-days', '30', '-extfile', `${l.name}.cnf`, '-extensions', 'v3', '-out', `${l.name}.pem`,
    ], dir);
  }
  writeFileSync(paths.combined, readFileSync(paths.gw.cert, 'utf8') + readFileSync(paths.gw.key, 'utf8'), { mode: 0o600 });
  return paths;
}
