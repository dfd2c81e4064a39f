/**
 * Worker tissue: the messenger's CPU-heavy and account work, served on a NATS queue group
 * so its load (scrypt above all) drives homeostasis. Receivers call it on behalf of their
 * clients (the API and its request shapes: cells/worker/api.ts); it owns accounts, login
 * rate limits, sessions and the public-key directory. Requests come from cells of the
 * organism (NATS is token-protected), and are still checked here: a receiver bug must not
 * corrupt an account.
 */
import { Inboxes } from '../messenger/inbox.ts';
import { openMessengerStores } from '../messenger/stores.ts';
import { defineTissue, type TissueInstance } from '../tissue.ts';
import { Accounts } from '../worker/accounts.ts';
import { workerEndpoints } from '../worker/api.ts';
import { RateLimiter } from '../worker/rate-limit.ts';
import { Sessions } from '../worker/sessions.ts';

export default defineTissue({
  name: 'worker',
  // scrypt runs on libuv's thread pool (4 threads): four hashes at once fill a worker.
  capacity: 4,
  async start(ctx): Promise<TissueInstance> {
    const stores = await openMessengerStores(ctx.nc, ctx.ns);
    const inboxes = await Inboxes.open(ctx.nc, ctx.ns);
    const gene = ctx.genome.messenger;
    const sessions = new Sessions(stores.sessions, gene.sessionTtlMs);
    const accounts = new Accounts(stores, gene, new RateLimiter(stores.rate, gene.loginWindowMs), sessions);
    return {
      endpoints: workerEndpoints({
        register: async (r) => {
          await accounts.register(r.user, r.password, r.ip);
          return { user: r.user };
        },
        login: (r) => accounts.login(r.user, r.password, r.ip),
        resume: (r) => accounts.resume(r.token),
        logout: async (r) => {
          await sessions.revoke(r.token);
          return {};
        },
        keysPublish: async (r) => {
          await accounts.publishKeys(r.user, r.x25519, r.ed25519);
          return {};
        },
        keysGet: async (r) => ({ keys: await accounts.getKeys(r.users) }),
        backupPut: async (r) => {
          await accounts.putBackup(r.user, r.blob);
          return {};
        },
        backupGet: async (r) => ({ blob: await accounts.getBackup(r.user) }),
        users: async (r) => ({ users: await accounts.search(r.query, r.limit) }),
        accountDelete: async (r) => {
          await accounts.deleteAccount(r.user, r.password, () => inboxes.purge(r.user));
          return {};
        },
      }),
    };
  },
});
