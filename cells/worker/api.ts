/**
 * The worker tissue's API, shared by its two sides: for each endpoint (a method name here,
 * its NATS endpoint name on the wire) the request, its shape (organism/wire/schema.ts) and
 * the reply. The worker checks every request against its shape before a handler sees it
 * (TISSUE_ERR_BAD_REQUEST: requests come from cells, but a receiver bug must not corrupt an
 * account); the receiver calls typed methods, so no call site names an endpoint or restates
 * a reply. Field shapes bound size only: names, passwords and keys are the worker's to judge,
 * with their own codes (ACCOUNT_ERR_*, AUTH_ERR_*).
 */
import { bytes, checkShape, int, list, plain, req, text, type Shape } from '../../organism/wire/schema.ts';
import type { EndpointHandler } from '../tissue.ts';
import type { PublicKeys } from './accounts.ts';

/** Longest string, byte string or list a request field may carry. */
export const FIELD_MAX = 1024;

interface Endpoint<Q, R> {
  request: Q;
  reply: R;
}

type Empty = Record<string, never>;

export interface WorkerApi {
  /** Creates an account; `ip` counts against that address's attempts. */
  register: Endpoint<{ user: string; password: string; ip: string }, { user: string }>;
  login: Endpoint<{ user: string; password: string; ip: string }, { user: string; token: string; expires: number }>;
  resume: Endpoint<{ token: string }, { user: string; expires: number }>;
  logout: Endpoint<{ token: string }, Empty>;
  keysPublish: Endpoint<{ user: string; x25519: Uint8Array; ed25519: Uint8Array }, Empty>;
  keysGet: Endpoint<{ users: string[] }, { keys: PublicKeys[] }>;
  backupPut: Endpoint<{ user: string; blob: Uint8Array }, Empty>;
  backupGet: Endpoint<{ user: string }, { blob: Uint8Array | null }>;
  users: Endpoint<{ query: string; limit: number }, { users: string[] }>;
  /** Checks the password, then removes the account, its keys, sessions, cursor and stored messages. */
  accountDelete: Endpoint<{ user: string; password: string }, Empty>;
}

export type WorkerMethod = keyof WorkerApi;
export type WorkerRequest<M extends WorkerMethod> = WorkerApi[M]['request'];
type WorkerReply<M extends WorkerMethod> = WorkerApi[M]['reply'];

/** Each method's endpoint: served at `org.<id>.tissue.worker.<endpoint>`. */
export const WORKER_ENDPOINTS: { readonly [M in WorkerMethod]: string } = {
  register: 'register',
  login: 'login',
  resume: 'resume',
  logout: 'logout',
  keysPublish: 'keys-publish',
  keysGet: 'keys-get',
  backupPut: 'backup-put',
  backupGet: 'backup-get',
  users: 'users',
  accountDelete: 'account-delete',
};

const str = req(text(0, FIELD_MAX));
const bin = req(bytes(0, FIELD_MAX));

const WORKER_REQUESTS: { readonly [M in WorkerMethod]: Shape<WorkerRequest<M>> } = {
  register: { user: str, password: str, ip: str },
  login: { user: str, password: str, ip: str },
  resume: { token: str },
  logout: { token: str },
  keysPublish: { user: str, x25519: bin, ed25519: bin },
  keysGet: { users: req(list(text(0, FIELD_MAX), 0, FIELD_MAX)) },
  backupPut: { user: str, blob: bin },
  backupGet: { user: str },
  users: { query: str, limit: req(int(0)) },
  accountDelete: { user: str, password: str },
};

const CHECKS = plain('TISSUE_ERR_BAD_REQUEST');

/** A request checked against its method's shape (TISSUE_ERR_BAD_REQUEST naming the field). */
export function checkWorkerRequest<M extends WorkerMethod>(method: M, request: unknown): WorkerRequest<M> {
  return checkShape(request, WORKER_REQUESTS[method], `worker ${WORKER_ENDPOINTS[method]}`, CHECKS);
}

/** The receiver's side: one typed method per endpoint; each rejects with the worker's CellularError. */
export type WorkerClient = { readonly [M in WorkerMethod]: (request: WorkerRequest<M>) => Promise<WorkerReply<M>> };

/** The worker's side: one handler per method, given a checked request. */
export type WorkerHandlers = { readonly [M in WorkerMethod]: (request: WorkerRequest<M>) => Promise<WorkerReply<M>> };

/** A client over `request` (endpoint name and request in, the opened reply out). */
export function workerClient(request: (endpoint: string, body: unknown) => Promise<unknown>): WorkerClient {
  const method = <M extends WorkerMethod>(m: M) => (body: WorkerRequest<M>) => request(WORKER_ENDPOINTS[m], body) as Promise<WorkerReply<M>>;
  return Object.fromEntries((Object.keys(WORKER_ENDPOINTS) as WorkerMethod[]).map((m) => [m, method(m)])) as unknown as WorkerClient;
}

/** The tissue's endpoints: each request checked against its shape, then handled. */
export function workerEndpoints(handlers: WorkerHandlers): Record<string, EndpointHandler> {
  const serve = <M extends WorkerMethod>(m: M): EndpointHandler => (request) => handlers[m](checkWorkerRequest(m, request));
  return Object.fromEntries((Object.keys(WORKER_ENDPOINTS) as WorkerMethod[]).map((m) => [WORKER_ENDPOINTS[m], serve(m)]));
}
