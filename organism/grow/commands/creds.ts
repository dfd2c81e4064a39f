/**
 * `cellular creds --tissue T [--out FILE] [--ttl SECONDS]`: a short-lived broker credential
 * with tissue T's permissions (or grow's, or an observer's), signed by the organism's
 * account key (derived from the root key in the state dir), in NATS's `.creds` format —
 * for operators and tests, as `nsc generate creds` serves NATS users. Written 0600 to FILE,
 * or printed. The inbox prefix its permissions allow goes to stderr: a client must use it.
 */
import { writeFileSync, chmodSync } from 'node:fs';
import { resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fmtCreds } from '@nats-io/jwt';
import { fromSeed } from '@nats-io/nkeys';
import { Namespace } from '../../kernel/namespace.ts';
import { inboxPrefix, PROCESS_ROLES, type BrokerRole } from '../../kernel/permissions.ts';
import { CellularError } from '../../wire/errors.ts';
import { Mint } from '../mint.ts';
import { loadRootKey } from '../root-key.ts';
import { target } from './target.ts';
import { HELP, say, type Flags } from './usage.ts';

/** The longest a printed credential lives: it cannot be revoked one by one. */
export const CREDS_MAX_TTL_S = 7 * 24 * 3_600;

export async function creds(flags: Flags): Promise<number> {
  const t = target(flags);
  const tissue = flags.tissue;
  if (!tissue) throw new CellularError('CLI_ERR_USAGE', `creds needs --tissue T (a tissue of the genome, or ${PROCESS_ROLES.join(' or ')})\n\n${HELP}`);
  const ttl = flags.ttl === undefined ? 3_600 : Number(flags.ttl);
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > CREDS_MAX_TTL_S) throw new CellularError('CLI_ERR_USAGE', `--ttl expects whole seconds from 1 to ${CREDS_MAX_TTL_S}, received ${JSON.stringify(flags.ttl)}`);
  const ns = new Namespace(t.id);
  const name = `creds-${randomBytes(4).toString('hex')}`;
  let role: BrokerRole;
  if (tissue === 'grow' || tissue === 'observer') role = { kind: tissue, name };
  else if (Object.hasOwn(t.genome.tissues, tissue)) role = { kind: 'cell', tissue, id: name };
  else throw new CellularError('CLI_ERR_USAGE', `--tissue ${JSON.stringify(tissue)}: not a tissue of the genome (${Object.keys(t.genome.tissues).join(', ')}) nor ${PROCESS_ROLES.join(' or ')}`);
  const cred = await new Mint(loadRootKey(t.stateDir).seed, t.id).credentialFor(ns, role, name, ttl);
  const text = fmtCreds(cred.jwt, fromSeed(cred.seed));
  if (flags.out) {
    const path = resolve(flags.out);
    writeFileSync(path, text, { mode: 0o600 });
    chmodSync(path, 0o600);
    say(`wrote ${path} (0600): ${tissue} credential ${name} of organism ${t.id}, valid ${ttl} s`);
  } else {
    process.stdout.write(text);
  }
  say(`connect with inboxPrefix ${JSON.stringify(inboxPrefix(name))}: its replies are allowed there only`);
  return 0;
}
