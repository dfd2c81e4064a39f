/**
 * Worker tissue: the messenger's account work, served on a NATS queue group so its load
 * drives homeostasis. Logins are OPAQUE (the memory-hard work runs in the browser; a worker
 * does a few curve operations); only the legacy login of a pre-OPAQUE account runs scrypt. Receivers call it on behalf of their
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
import { OpaqueServer } from '../worker/opaque-server.ts';

export default defineTissue({
  name: 'worker',
  // scrypt runs on libuv's thread pool (4 threads): four hashes at once fill a worker.
  capacity: 4,
  async start(ctx): Promise<TissueInstance> {
    const stores = await openMessengerStores(ctx.nc, ctx.ns);
    const inboxes = await Inboxes.open(ctx.nc, ctx.ns);
    const gene = ctx.genome.messenger;
    const sessions = new Sessions(stores.sessions, gene.sessionTtlMs);
    const accounts = new Accounts(stores, gene, new RateLimiter(stores.rate, gene.loginWindowMs), sessions, await OpaqueServer.open(stores.accounts));
    return {
      endpoints: workerEndpoints({
        registerStart: (r) => accounts.registerStart(r.user, r.request, r.ip),
        registerFinish: (r) => accounts.registerFinish(r),
        loginStart: (r) => accounts.loginStart(r.user, r.request, r.ip, r.device),
        loginFinish: (r) => accounts.loginFinish(r.user, r.state, r.finish, r.grant === true, r.ip),
        login: (r) => accounts.legacyLogin(r.user, r.password, r.ip),
        upgradeStart: (r) => accounts.upgradeStart(r.user, r.request),
        upgradeFinish: async (r) => {
          await accounts.upgradeFinish(r.user, r.record, r.backup, r.grant);
          return {};
        },
        resume: (r) => accounts.resume(r.token),
        logout: async (r) => {
          await sessions.revoke(r.token);
          return {};
        },
        keysPublish: async (r) => {
          await accounts.publishKeys(r.user, r.x25519, r.ed25519, r);
          return {};
        },
        keysGet: async (r) => ({ keys: await accounts.getKeys(r.users) }),
        backupPut: async (r) => {
          await accounts.putBackup(r.user, r.blob, r);
          return {};
        },
        backupGet: async (r) => ({ blob: await accounts.getBackup(r.user) }),
        users: async (r) => ({ users: await accounts.search(r.query, r.limit) }),
        accountDelete: async (r) => {
          await accounts.deleteAccount(r.user, r.grant, () => inboxes.purge(r.user));
          return {};
        },
      }),
    };
  },
});
