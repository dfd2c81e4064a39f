/**
 * Worker tissue: the messenger's CPU-heavy and account work, served on a NATS queue group
 * so its load (scrypt above all) drives homeostasis. Receivers call it on behalf of their
 * clients; it owns accounts, login rate limits, sessions and the public-key directory.
 * Requests come from cells of the organism (NATS is token-protected), and are still
 * validated here: a receiver bug must not corrupt an account.
 */
import { CellularError } from '../../organism/wire/errors.ts';
import { openMessengerStores } from '../messenger/stores.ts';
import { purgeInbox } from '../messenger/inbox-purge.ts';
import { defineTissue, type TissueContext } from '../tissue.ts';
import { Accounts } from '../worker/accounts.ts';
import { RateLimiter } from '../worker/rate-limit.ts';
import { Sessions } from '../worker/sessions.ts';

/** One worker cell serves one organism: its services, made at start. */
let accounts: Accounts | undefined;
let sessions: Sessions | undefined;

function field(request: unknown, name: string, kind: 'string' | 'bytes' | 'strings' | 'int'): unknown {
  const value = typeof request === 'object' && request !== null && Object.hasOwn(request, name) ? (request as Record<string, unknown>)[name] : undefined;
  const ok =
    kind === 'string' ? typeof value === 'string' && value.length <= 1024
    : kind === 'bytes' ? value instanceof Uint8Array
    : kind === 'int' ? Number.isSafeInteger(value)
    : Array.isArray(value) && value.length <= 1024 && value.every((v) => typeof v === 'string');
  if (!ok) throw new CellularError('TISSUE_ERR_BAD_REQUEST', `worker: field ${name} must be ${kind}`);
  return value;
}
const str = (r: unknown, name: string) => field(r, name, 'string') as string;

function ready(): { accounts: Accounts; sessions: Sessions } {
  if (!accounts || !sessions) throw new CellularError('CELL_ERR_CLOSED', 'worker not started');
  return { accounts, sessions };
}

export default defineTissue({
  name: 'worker',
  // scrypt runs on libuv's thread pool (4 threads): four hashes at once fill a worker.
  capacity: 4,
  async start(ctx: TissueContext) {
    const stores = await openMessengerStores(ctx.nc, ctx.ns);
    const gene = ctx.genome.messenger;
    sessions = new Sessions(stores.sessions, gene.sessionTtlMs);
    accounts = new Accounts(stores, gene, new RateLimiter(stores.rate, gene.loginWindowMs), sessions);
  },
  endpoints: {
    register: async (r) => {
      await ready().accounts.register(str(r, 'user'), str(r, 'password'), str(r, 'ip'));
      return { user: str(r, 'user') };
    },
    login: (r) => ready().accounts.login(str(r, 'user'), str(r, 'password'), str(r, 'ip')),
    resume: (r) => ready().accounts.resume(str(r, 'token')),
    logout: async (r) => {
      await ready().sessions.revoke(str(r, 'token'));
      return {};
    },
    'keys-publish': async (r) => {
      await ready().accounts.publishKeys(str(r, 'user'), field(r, 'x25519', 'bytes') as Uint8Array, field(r, 'ed25519', 'bytes') as Uint8Array);
      return {};
    },
    'keys-get': async (r) => ({ keys: await ready().accounts.getKeys(field(r, 'users', 'strings') as string[]) }),
    'backup-put': async (r) => {
      await ready().accounts.putBackup(str(r, 'user'), field(r, 'blob', 'bytes') as Uint8Array);
      return {};
    },
    'backup-get': async (r) => ({ blob: await ready().accounts.getBackup(str(r, 'user')) }),
    users: async (r) => ({ users: await ready().accounts.search(str(r, 'query'), field(r, 'limit', 'int') as number) }),
    exists: async (r) => ({ exists: await ready().accounts.exists(str(r, 'user')) }),
    'account-delete': async (r, ctx) => {
      const user = str(r, 'user');
      await ready().accounts.deleteAccount(user, str(r, 'password'), () => purgeInbox(ctx.nc, ctx.ns, user));
      return {};
    },
  },
});
