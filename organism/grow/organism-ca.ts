/**
 * The organism's own certificate authority, for TLS between hosts: the first grow of a
 * cluster makes it (`<state-dir>/ca.pem`, and `ca.key` mode 0600, copied to every host like
 * the root key), and each host's grow signs itself a server certificate at every start,
 * naming its host name and every address it has (routes and clients reach it by address).
 * nats-server then speaks TLS on routes (both sides show a certificate of this CA: a server
 * without one cannot join) and on client connections (clients check the server's).
 *
 * Node has no API to make certificates, so this uses the `openssl` command (Debian's
 * `openssl` package), with a P-256 key for each.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { CellularError } from '../wire/errors.ts';

export const CA_CERT_FILE = 'ca.pem';
export const CA_KEY_FILE = 'ca.key';

export interface HostTls {
  /** PEM of the organism CA: what clients and routes trust. */
  caFile: string;
  certFile: string;
  keyFile: string;
}

function openssl(args: string[]): void {
  try {
    execFileSync(process.env.OPENSSL_BIN ?? 'openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (cause) {
    const e = cause as NodeJS.ErrnoException & { stderr?: Buffer };
    if (e.code === 'ENOENT') throw new CellularError('BROKER_ERR_TLS', 'TLS between hosts needs the openssl command: apt-get install -y openssl (or set OPENSSL_BIN)', { cause });
    throw new CellularError('BROKER_ERR_TLS', `openssl ${args[0]} failed: ${String(e.stderr ?? e.message).trim().slice(-400)}`, { cause });
  }
}

/** The organism CA in `stateDir`, made the first time (its key 0600, refused if others can read it). */
export function loadOrCreateCa(stateDir: string, organism: string): { certFile: string; keyFile: string } {
  const certFile = join(stateDir, CA_CERT_FILE);
  const keyFile = join(stateDir, CA_KEY_FILE);
  if (!existsSync(keyFile)) {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '3650', '-subj', `/CN=cellular organism ${organism} CA`,
      '-addext', 'basicConstraints=critical,CA:TRUE,pathlen:0', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    chmodSync(keyFile, 0o600);
  }
  if ((statSync(keyFile).mode & 0o077) !== 0) throw new CellularError('BROKER_ERR_TLS', `${keyFile} is readable by group or others; run chmod 600 ${keyFile}`);
  if (!existsSync(certFile)) throw new CellularError('BROKER_ERR_TLS', `${keyFile} has no ${CA_CERT_FILE} beside it: copy both from the first host`);
  return { certFile, keyFile };
}

/** Every address of this machine (or network namespace), and the names it goes by. */
export function localNames(extra: readonly string[] = []): { dns: string[]; ips: string[] } {
  const ips = new Set<string>(['127.0.0.1', '::1']);
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) ips.add(a.address.split('%')[0]!);
  const dns = new Set<string>(['localhost']);
  for (const n of extra) {
    if (/^[0-9.]+$/.test(n) || n.includes(':')) ips.add(n);
    else if (/^[A-Za-z0-9.-]{1,253}$/.test(n)) dns.add(n);
  }
  return { dns: [...dns], ips: [...ips] };
}

/** A fresh server certificate for this host, signed by the organism CA, under `dir` (key 0600). */
export function issueHostCertificate(stateDir: string, organism: string, dir: string, host: string, extraNames: readonly string[] = []): HostTls {
  const ca = loadOrCreateCa(stateDir, organism);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const keyFile = join(dir, 'host.key');
  const certFile = join(dir, 'host.pem');
  const csr = join(dir, 'host.csr');
  const ext = join(dir, 'host.ext');
  const { dns, ips } = localNames([host, ...extraNames]);
  writeFileSync(ext, [
    'basicConstraints=CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    // Both: a route is a client of the other server and a server to it.
    'extendedKeyUsage=serverAuth,clientAuth',
    `subjectAltName=${[...dns.map((d) => `DNS:${d}`), ...ips.map((i) => `IP:${i}`)].join(',')}`,
    '',
  ].join('\n'));
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', csr, '-subj', `/CN=${host}`]);
  chmodSync(keyFile, 0o600);
  openssl(['x509', '-req', '-in', csr, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-CAcreateserial', '-CAserial', join(dir, 'ca.srl'), '-out', certFile, '-days', '365', '-extfile', ext]);
  return { caFile: ca.certFile, certFile, keyFile };
}

/** The CA's PEM text (what a client passes as `tls.ca`). */
export function caPem(caFile: string): string {
  return readFileSync(caFile, 'utf8');
}
