/**
 * The worker tissue's API, shared by its two sides: for each endpoint (a method name here,
 * its NATS endpoint name on the wire) the request, its shape (organism/wire/schema.ts) and
 * the reply. The worker checks every request against its shape before a handler sees it
 * (TISSUE_ERR_BAD_REQUEST: requests come from cells, but a receiver bug must not corrupt an
 * account); the receiver calls typed methods, so no call site names an endpoint or restates
 * a reply. Field shapes bound size only: names, passwords and keys are the worker's to judge,
 * with their own codes (ACCOUNT_ERR_*, AUTH_ERR_*).
 */
import { bool, bytes, checkShape, int, list, opt, plain, req, text, type Shape } from '../../organism/wire/schema.ts';
import type { EndpointHandler } from '../tissue.ts';
import type { PublicKeys } from './accounts.ts';

/** Longest string, byte string or list a request field may carry. */
export const FIELD_MAX = 1024;

interface Endpoint<Q, R> {
  request: Q;
  reply: R;
}

type Empty = Record<string, never>;

type Session = { user: string; token: string; expires: number };
/** The owner's proof for a replacement (accounts.ts OwnerProof): a grant, or a signature and its time. */
type Proof = { grant?: string | undefined; sig?: Uint8Array | undefined; at?: number | undefined };

export interface WorkerApi {
  /** OPAQUE registration (the password never reaches a worker): the OPRF evaluation for the name. */
  registerStart: Endpoint<{ user: string; request: string; ip: string }, { response: string }>;
  /** Claims the name with the OPAQUE record, publishes the keys, stores the backup, opens a session; `ip` counts against that address's attempts. */
  registerFinish: Endpoint<{ user: string; record: string; x25519: Uint8Array; ed25519: Uint8Array; backup: Uint8Array; ip: string }, Session & { device: string }>;
  /** OPAQUE login, first message: the response and the server's sealed state (or AUTH_ERR_LEGACY for a v1 account). */
  loginStart: Endpoint<{ user: string; request: string; ip: string; device?: string | undefined }, { response: string; state: Uint8Array }>;
  /** OPAQUE login, last message: a session, and with `grant` a grant (the proof of a fresh login, for 5 minutes, once). */
  loginFinish: Endpoint<{ user: string; finish: string; state: Uint8Array; grant?: boolean | undefined; ip?: string | undefined }, Session & { grant?: string; device: string }>;
  /** The password login of an account made before OPAQUE (v1) only, so its owner can upgrade it. */
  login: Endpoint<{ user: string; password: string; ip: string }, Session & { grant: string }>;
  /** Upgrade of a v1 account: as registerStart and registerFinish for the session's own account, with the grant of its login. */
  upgradeStart: Endpoint<{ user: string; request: string }, { response: string }>;
  upgradeFinish: Endpoint<{ user: string; record: string; backup: Uint8Array; grant: string }, Empty>;
  resume: Endpoint<{ token: string }, { user: string; expires: number }>;
  logout: Endpoint<{ token: string }, Empty>;
  keysPublish: Endpoint<{ user: string; x25519: Uint8Array; ed25519: Uint8Array } & Proof, Empty>;
  keysGet: Endpoint<{ users: string[] }, { keys: PublicKeys[] }>;
  backupPut: Endpoint<{ user: string; blob: Uint8Array } & Proof, Empty>;
  backupGet: Endpoint<{ user: string }, { blob: Uint8Array | null }>;
  users: Endpoint<{ query: string; limit: number }, { users: string[] }>;
  /** Uses the grant of a login just made, then removes the account, its keys, sessions, cursor and stored messages. */
  accountDelete: Endpoint<{ user: string; grant: string }, Empty>;
}

export type WorkerMethod = keyof WorkerApi;
export type WorkerRequest<M extends WorkerMethod> = WorkerApi[M]['request'];
type WorkerReply<M extends WorkerMethod> = WorkerApi[M]['reply'];

/** Each method's endpoint: served at `org.<id>.tissue.worker.<endpoint>`. */
export const WORKER_ENDPOINTS: { readonly [M in WorkerMethod]: string } = {
  registerStart: 'register-start',
  registerFinish: 'register-finish',
  loginStart: 'login-start',
  loginFinish: 'login-finish',
  login: 'login',
  upgradeStart: 'upgrade-start',
  upgradeFinish: 'upgrade-finish',
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
const proof = { grant: opt(text(0, FIELD_MAX)), sig: opt(bytes(0, FIELD_MAX)), at: opt(int(0)) };

const WORKER_REQUESTS: { readonly [M in WorkerMethod]: Shape<WorkerRequest<M>> } = {
  registerStart: { user: str, request: str, ip: str },
  registerFinish: { user: str, record: str, x25519: bin, ed25519: bin, backup: bin, ip: str },
  loginStart: { user: str, request: str, ip: str, device: opt(text(0, FIELD_MAX)) },
  loginFinish: { user: str, finish: str, state: bin, grant: opt(bool), ip: opt(text(0, FIELD_MAX)) },
  login: { user: str, password: str, ip: str },
  upgradeStart: { user: str, request: str },
  upgradeFinish: { user: str, record: str, backup: bin, grant: str },
  resume: { token: str },
  logout: { token: str },
  keysPublish: { user: str, x25519: bin, ed25519: bin, ...proof },
  keysGet: { users: req(list(text(0, FIELD_MAX), 0, FIELD_MAX)) },
  backupPut: { user: str, blob: bin, ...proof },
  backupGet: { user: str },
  users: { query: str, limit: req(int(0)) },
  accountDelete: { user: str, grant: str },
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
