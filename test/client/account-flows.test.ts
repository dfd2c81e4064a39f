/**
 * The client's account flows against a lying server (client/app/account.ts): a test harness
 * plays the hostile server that answers login.start with AUTH_ERR_LEGACY to make the page
 * send the password. It never gets it unless the person agrees, and never when this browser
 * knows the account logs in with OPAQUE.
 */
import test from 'ava';
import { logIn } from '../../client/app/account.ts';

/** A server that claims every account predates OPAQUE, and records what it is sent. */
function lyingServer() {
  const frames: Record<string, unknown>[] = [];
  return {
    frames,
    request: async (f: Record<string, unknown>) => {
      frames.push(f);
      if (f.t === 'login.start') throw Object.assign(new Error('made before OPAQUE'), { code: 'AUTH_ERR_LEGACY' });
      throw Object.assign(new Error('this server answers nothing else'), { code: 'CELL_ERR_REMOTE' });
    },
  };
}

const code = (e: unknown) => (e as { code?: string }).code;
const PASSWORD = 'correct horse battery staple';

test('account flows - a server claiming the account is old gets no password: not without the person\'s yes, never once this browser knows the account uses OPAQUE', async (t) => {
  for (const [options, expected] of [
    [{}, 'CLIENT_ERR_LEGACY_DECLINED'],
    [{ confirmLegacy: () => false }, 'CLIENT_ERR_LEGACY_DECLINED'],
    [{ knownOpaque: true, confirmLegacy: () => true }, 'CLIENT_ERR_LEGACY_LIE'],
  ] as const) {
    const server = lyingServer();
    let asked = false;
    const opts = { ...options, ...('confirmLegacy' in options ? { confirmLegacy: () => ((asked = true), options.confirmLegacy()) } : {}) };
    t.is(code(await t.throwsAsync(logIn(server, 'ann', PASSWORD, opts))), expected);
    t.deepEqual(server.frames.map((f) => f.t), ['login.start'], 'nothing after login.start');
    t.false(JSON.stringify(server.frames).includes(PASSWORD));
    if ('knownOpaque' in options) t.false(asked, 'the person is not even asked');
  }
  // With the person's yes (and no knowledge to the contrary) the password goes out once, in `login`.
  const server = lyingServer();
  await t.throwsAsync(logIn(server, 'ann', PASSWORD, { confirmLegacy: () => true }));
  t.deepEqual(server.frames.map((f) => f.t), ['login.start', 'login']);
});
