/**
 * The worker's API (cells/worker/api.ts): every request is checked against its shape before
 * a handler sees it, and the receiver's typed methods reach the endpoints the worker serves.
 */
import test from 'ava';
import { isCellularError } from '../../organism/wire/errors.ts';
import { checkWorkerRequest, FIELD_MAX, WORKER_ENDPOINTS, workerClient, workerEndpoints, type WorkerHandlers } from '../../cells/worker/api.ts';

const refusal = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    if (isCellularError(e)) return `${e.code}: ${e.message}`;
    throw e;
  }
  return 'accepted';
};

test('worker api - a request is its shape, rebuilt; anything else is TISSUE_ERR_BAD_REQUEST naming the field', (t) => {
  t.deepEqual(checkWorkerRequest('login', { user: 'ann', password: 'secret password', ip: '192.0.2.1' }), { user: 'ann', password: 'secret password', ip: '192.0.2.1' });
  t.regex(refusal(() => checkWorkerRequest('login', { user: 'ann', password: 'x' })), /^TISSUE_ERR_BAD_REQUEST: worker login: ip is missing/);
  t.regex(refusal(() => checkWorkerRequest('login', { user: 'ann', password: 'x', ip: 'y', admin: true })), /^TISSUE_ERR_BAD_REQUEST: .*"admin" is not a field/);
  t.regex(refusal(() => checkWorkerRequest('resume', { token: 'x'.repeat(FIELD_MAX + 1) })), /^TISSUE_ERR_BAD_REQUEST: worker resume: token must be a string of 0 to 1024 characters, received a string of 1025/);
  t.regex(refusal(() => checkWorkerRequest('keysPublish', { user: 'ann', x25519: 'not bytes', ed25519: new Uint8Array(32) })), /^TISSUE_ERR_BAD_REQUEST: worker keys-publish: x25519 must be/);
  t.regex(refusal(() => checkWorkerRequest('keysGet', { users: new Array(FIELD_MAX + 1).fill('ann') })), /^TISSUE_ERR_BAD_REQUEST: worker keys-get: users must be an array/);
  t.regex(refusal(() => checkWorkerRequest('keysGet', { users: ['ann', 7] })), /^TISSUE_ERR_BAD_REQUEST: worker keys-get: users\[1\] must be/);
  t.regex(refusal(() => checkWorkerRequest('users', { query: 'a', limit: 1.5 })), /^TISSUE_ERR_BAD_REQUEST: worker users: limit must be an integer/);
  t.regex(refusal(() => checkWorkerRequest('backupGet', null)), /^TISSUE_ERR_BAD_REQUEST: worker backup-get must be a map/);
});

test('worker api - the receiver\'s methods reach the endpoints the worker serves, by the same names', async (t) => {
  const names = Object.values(WORKER_ENDPOINTS);
  t.is(new Set(names).size, names.length);
  t.false(names.includes('exists'), 'no endpoint without a caller');
  const seen: string[] = [];
  const handlers = Object.fromEntries(Object.keys(WORKER_ENDPOINTS).map((m) => [m, async (r: unknown) => ({ method: m, r })])) as unknown as WorkerHandlers;
  const served = workerEndpoints(handlers);
  t.deepEqual(Object.keys(served).sort(), [...names].sort());
  const client = workerClient(async (endpoint, body) => {
    seen.push(endpoint);
    return served[endpoint]!(body, undefined as never);
  });
  t.deepEqual(await client.keysGet({ users: ['ann'] }), { method: 'keysGet', r: { users: ['ann'] } } as never);
  await t.throwsAsync(client.logout({ token: 7 as unknown as string }), { message: /worker logout: token must be/ });
  t.deepEqual(seen, ['keys-get', 'logout']);
});
