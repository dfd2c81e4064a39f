/**
 * The client protocol's frames, version 1 (docs/protocol.md is the contract): one msgpack
 * map per WebSocket binary message, `{v: 1, t: <type>, ...fields}`.
 *
 * One schema per frame type (field → check) drives both directions. Decoding is strict: a
 * missing, unknown, mistyped or out-of-range field is PROTO_ERR_BAD_FIELD and the message
 * names it. Every map is rebuilt as a fresh literal holding only its schema's fields, so
 * nothing a peer sends can reach a prototype. Encoding runs the same checks and writes the
 * fields in schema order (`v`, `t`, then `id`), so whatever encodes also decodes.
 *
 * Isomorphic: the browser client bundles this file, so it imports msgpackr (through the
 * organism's one codec) and the error catalogue, nothing from Node.
 */
import { codec } from './codec.ts';
import { CellularError } from './errors.ts';
import * as schema from './schema.ts';
import { bool, bytes, describe, fail, fields, int, isMap, list, matching, oneOf, orNull, quote, text } from './schema.ts';

export const PROTOCOL_VERSION = 1;

/** WebSocket close codes the receiver uses. */
export const CLOSE = {
  /** The receiver is leaving (draining or dying); a `moved` frame listing live receivers came just before. */
  MOVED: 4000,
  /** Slow consumer: the client left more than messenger.maxPendingBytes of outbound frames unread. */
  SLOW: 4001,
  /** Policy: too many frames in a row that could not be decoded. */
  POLICY: 4002,
  /** The account was deleted: sent after the `ok` that answers `account.delete`. */
  ACCOUNT_DELETED: 4004,
  /** The connection's session ended elsewhere (logged out, revoked or expired): log in again. */
  SESSION_ENDED: 4005,
  /** A message too big for the WebSocket layer even to read (the standard "message too big"); one just over
   * messenger.maxFrameBytes gets a PROTO_ERR_TOO_LARGE error frame instead. */
  TOO_BIG: 1009,
} as const;

/** The genome's messenger limits a decoder enforces (messenger.* fields of the same names). */
export interface FrameLimits {
  maxFrameBytes: number;
  maxBodyBytes: number;
  groupMaxMembers: number;
  pageMax: number;
}

/**
 * User names (NATS subject tokens). Every field that names an existing user must match;
 * only `register` and `login` take any string, for the worker to judge.
 */
export const USER_NAME = /^[a-z0-9][a-z0-9_-]{2,31}$/;
/** Message ids, chosen by the sender; group ids have the same form. */
export const MESSAGE_ID = /^[A-Za-z0-9_-]{8,64}$/;
/** Request ids: 1..2^31-1. */
export const MAX_ID = 2 ** 31 - 1;

// ---- frames -------------------------------------------------------------------------------

/** A stored message as the server hands it out, in `deliver` frames and `history` pages. */
export interface Delivered {
  /** Its position in the messages stream (increasing, not contiguous per user): what `deliver.ack`, `history.after` and `delete.seqs` take. */
  seq: number;
  msg: string;
  from: string;
  to: string;
  /** When the server stored it, ms since the epoch. */
  at: number;
  /** Ciphertext, opaque to the server. */
  body: Uint8Array;
  /** The group id, for a copy of a group message. */
  group?: string;
}

/** One recipient's copy of a group message. */
export interface GroupCopy {
  to: string;
  body: Uint8Array;
}

export interface UserKeys {
  user: string;
  x25519: Uint8Array;
  ed25519: Uint8Array;
}

export interface UserListing {
  user: string;
  online?: boolean;
}

/**
 * What shows the owner asks for a replacement of keys or backup (the worker judges it): a
 * grant from a login of the last five minutes, or a signature by the current Ed25519
 * identity key over the owner statement (docs/crypto.md) and the statement's time.
 */
export interface OwnerProof {
  grant?: string;
  sig?: Uint8Array;
  at?: number;
}

/**
 * Frame types mirror the wire map. `v` may be left out when building a frame (the encoder
 * writes it; if given it must be 1); decoders always return it.
 */
type Versioned<U> = U extends unknown ? { v?: typeof PROTOCOL_VERSION } & U : never;

export type ClientFrame = Versioned<
  | { t: 'hello'; id: number; session?: string }
  | { t: 'register.start'; id: number; user: string; request: string }
  | { t: 'register.finish'; id: number; user: string; record: string; x25519: Uint8Array; ed25519: Uint8Array; backup: Uint8Array }
  | { t: 'login.start'; id: number; user: string; request: string; device?: string }
  | { t: 'login.finish'; id: number; user: string; finish: string; state: Uint8Array; grant?: boolean }
  | { t: 'login'; id: number; user: string; password: string }
  | { t: 'upgrade.start'; id: number; request: string }
  | { t: 'upgrade.finish'; id: number; record: string; backup: Uint8Array; grant: string }
  | { t: 'resume'; id: number; token: string }
  | { t: 'logout'; id: number }
  | ({ t: 'keys.publish'; id: number; x25519: Uint8Array; ed25519: Uint8Array } & OwnerProof)
  | { t: 'keys.get'; id: number; users: string[] }
  | ({ t: 'keys.backup.put'; id: number; blob: Uint8Array } & OwnerProof)
  | { t: 'keys.backup.get'; id: number }
  | { t: 'users'; id: number; query: string; limit?: number }
  | { t: 'contacts.set'; id: number; users: string[] }
  | { t: 'send'; id: number; msg: string; to: string; body: Uint8Array }
  | { t: 'send.group'; id: number; msg: string; group: string; copies: GroupCopy[] }
  | { t: 'deliver.ack'; id: number; seq: number }
  | { t: 'history'; id: number; with?: string; after?: number; limit?: number }
  | { t: 'read'; id: number; msg: string; from: string; seq: number }
  | { t: 'delete'; id: number; msg: string; scope: 'me' | 'everyone'; seqs: number[] }
  | { t: 'account.delete'; id: number; grant: string }
  | { t: 'ping'; id: number }
>;

export type ServerFrame = Versioned<
  | { t: 'welcome'; id: number; cell: string; receivers: string[]; user: string | null }
  | { t: 'ok'; id: number }
  | { t: 'session'; id: number; user: string; token: string; expires: number; grant?: string; device?: string }
  | { t: 'register.response'; id: number; response: string }
  | { t: 'login.response'; id: number; response: string; state: Uint8Array }
  | { t: 'keys'; id: number; keys: UserKeys[] }
  | { t: 'keys.backup'; id: number; blob: Uint8Array | null }
  | { t: 'users'; id: number; users: UserListing[] }
  | { t: 'ack'; id: number; msg: string; seq: number; seqs: number[] }
  | ({ t: 'deliver' } & Delivered)
  | { t: 'history'; id: number; messages: Delivered[]; more: boolean }
  | { t: 'receipt'; msg: string; by: string; at: number }
  | { t: 'deleted'; msg: string; by: string }
  | { t: 'presence'; user: string; online: boolean }
  | { t: 'error'; id?: number; code: string; message: string }
  | { t: 'moved'; receivers: string[] }
  | { t: 'receivers'; receivers: string[] }
  | { t: 'pong'; id: number }
>;

export type ClientFrameOf<T extends ClientFrame['t']> = Extract<ClientFrame, { t: T }>;
export type ServerFrameOf<T extends ServerFrame['t']> = Extract<ServerFrame, { t: T }>;

// ---- checks -------------------------------------------------------------------------------

type LimitName = Exclude<keyof FrameLimits, 'maxFrameBytes'>;
type Check<T> = schema.Check<T, LimitName>;
type Shape<F> = schema.Shape<F, LimitName>;
type Schemas<U extends { t: string }> = schema.Schemas<U, LimitName>;
type AnyShape = schema.AnyShape<LimitName>;

const req = <T>(check: Check<T>) => schema.req<T, LimitName>(check);
const opt = <T>(check: Check<T>) => schema.opt<T, LimitName>(check);
const map = <T>(shape: Shape<T>) => schema.map<T, LimitName>(shape);

/** What frame checks consult: the genome's messenger limits; a failure is PROTO_ERR_BAD_FIELD. */
const contextOf = (limits: FrameLimits): schema.CheckContext<LimitName> => ({ code: 'PROTO_ERR_BAD_FIELD', limits, limitPrefix: 'messenger.' });

const key32 = bytes(32, 32);

/** The password-sealed backup of a user's private keys (opaque to the server). */
export const BACKUP_MAX_BYTES = 1024;
const backup = bytes(1, BACKUP_MAX_BYTES);

/** A message body: 1..maxBodyBytes bytes; a larger one is PROTO_ERR_TOO_LARGE, not a bad field. */
const body: Check<Uint8Array> = (value, at, ctx) => {
  if (!(value instanceof Uint8Array) || value.length === 0) fail(ctx, at, 'non-empty bin', value);
  if (value.length > ctx.limits.maxBodyBytes) {
    throw new CellularError('PROTO_ERR_TOO_LARGE', `${at} is ${value.length} bytes, more than messenger.maxBodyBytes (${ctx.limits.maxBodyBytes})`);
  }
  return value;
};

// ---- schemas ------------------------------------------------------------------------------

const id = req(int(1, MAX_ID));
const user = matching(USER_NAME, 'a user name (3-32 of a-z, 0-9, _ and -, starting with a letter or digit)');
const msg = req(matching(MESSAGE_ID, 'a message id (8-64 of A-Z, a-z, 0-9, _ and -)'));
const group = matching(MESSAGE_ID, 'a group id (8-64 of A-Z, a-z, 0-9, _ and -)');
const token = text(1, 128);
/** Form and length are the worker's to judge (ACCOUNT_ERR_USERNAME, ACCOUNT_ERR_PASSWORD, AUTH_ERR_CREDENTIALS). */
const credential = req(text(0, 1024));
/** An OPAQUE message or record (base64url, as @serenity-kit/opaque writes it); its content is the worker's to judge. */
const opaqueText = req(matching(/^[A-Za-z0-9_-]{1,1024}$/, 'an OPAQUE message (base64url, 1-1024 characters)'));
/** The server's sealed login state, carried by the client from login.response to login.finish. */
const loginState = req(bytes(1, 1024));
const ownerProof = { grant: opt(token), sig: opt(bytes(64, 64)), at: opt(int(0)) };
const seq = int(1);
const time = req(int(0));
const urls = req(list(text(1, 2048), 0, Number.MAX_SAFE_INTEGER));

const delivered: Shape<Delivered> = {
  seq: req(seq),
  msg,
  from: req(user),
  to: req(user),
  at: time,
  body: req(body),
  group: opt(group),
};

const CLIENT: Schemas<ClientFrame> = {
  hello: { id, session: opt(token) },
  'register.start': { id, user: credential, request: opaqueText },
  'register.finish': { id, user: credential, record: opaqueText, x25519: req(key32), ed25519: req(key32), backup: req(backup) },
  'login.start': { id, user: credential, request: opaqueText, device: opt(token) },
  'login.finish': { id, user: credential, finish: opaqueText, state: loginState, grant: opt(bool) },
  login: { id, user: credential, password: credential },
  'upgrade.start': { id, request: opaqueText },
  'upgrade.finish': { id, record: opaqueText, backup: req(backup), grant: req(token) },
  resume: { id, token: req(token) },
  logout: { id },
  'keys.publish': { id, x25519: req(key32), ed25519: req(key32), ...ownerProof },
  'keys.get': { id, users: req(list(user, 1, 64)) },
  'keys.backup.put': { id, blob: req(backup), ...ownerProof },
  'keys.backup.get': { id },
  users: { id, query: req(text(0, 32)), limit: opt(int(1, 100)) },
  'contacts.set': { id, users: req(list(user, 0, 1000, (u) => u)) },
  send: { id, msg, to: req(user), body: req(body) },
  'send.group': {
    id,
    msg,
    group: req(group),
    copies: req(list(map<GroupCopy>({ to: req(user), body: req(body) }), 1, 'groupMaxMembers', (c) => c.to)),
  },
  'deliver.ack': { id, seq: req(seq) },
  history: { id, with: opt(user), after: opt(int(0)), limit: opt(int(1, 'pageMax')) },
  read: { id, msg, from: req(user), seq: req(seq) },
  delete: { id, msg, scope: req(oneOf('me', 'everyone')), seqs: req(list(seq, 1, 'groupMaxMembers')) },
  'account.delete': { id, grant: req(token) },
  ping: { id },
};

const SERVER: Schemas<ServerFrame> = {
  welcome: { id, cell: req(text(1, 128)), receivers: urls, user: req(orNull(user)) },
  ok: { id },
  session: { id, user: req(user), token: req(token), expires: time, grant: opt(token), device: opt(token) },
  'register.response': { id, response: opaqueText },
  'login.response': { id, response: opaqueText, state: loginState },
  keys: { id, keys: req(list(map<UserKeys>({ user: req(user), x25519: req(key32), ed25519: req(key32) }), 0, 64)) },
  'keys.backup': { id, blob: req(orNull(backup)) },
  users: { id, users: req(list(map<UserListing>({ user: req(user), online: opt(bool) }), 0, 100)) },
  ack: { id, msg, seq: req(seq), seqs: req(list(seq, 1, Number.MAX_SAFE_INTEGER)) },
  deliver: delivered,
  history: { id, messages: req(list(map(delivered), 0, 'pageMax')), more: req(bool) },
  receipt: { msg, by: req(user), at: time },
  deleted: { msg, by: req(user) },
  presence: { user: req(user), online: req(bool) },
  error: { id: opt(int(1, MAX_ID)), code: req(text(1, 64)), message: req(text(0, 1024)) },
  moved: { receivers: urls },
  receivers: { receivers: urls },
  pong: { id },
};

export const CLIENT_FRAME_TYPES = Object.freeze(Object.keys(CLIENT)) as readonly ClientFrame['t'][];
export const SERVER_FRAME_TYPES = Object.freeze(Object.keys(SERVER)) as readonly ServerFrame['t'][];

/** Server frames, and client frames being encoded, answer to no genome. */
const UNLIMITED: FrameLimits = Object.freeze({ maxFrameBytes: Infinity, maxBodyBytes: Infinity, groupMaxMembers: Infinity, pageMax: Infinity });

// ---- codec --------------------------------------------------------------------------------

/** Checks a frame map into a fresh `{v, t, ...fields}`; on the wire `v` is required, when encoding it may be left out. */
function checkFrame<U extends { t: string }>(raw: unknown, schemas: Schemas<U>, limits: FrameLimits, wire: boolean): U {
  if (!isMap(raw)) throw new CellularError('PROTO_ERR_MALFORMED', `a frame must be a msgpack map, received ${describe(raw)}`);
  if (raw.v !== PROTOCOL_VERSION && (wire || raw.v !== undefined)) {
    throw new CellularError('PROTO_ERR_MALFORMED', `a frame's v (protocol version) must be ${PROTOCOL_VERSION}, received ${describe(raw.v)}`);
  }
  const t = raw.t;
  if (typeof t !== 'string' || !Object.hasOwn(schemas, t)) {
    throw new CellularError('PROTO_ERR_UNKNOWN_TYPE', `unknown frame type ${typeof t === 'string' ? quote(t) : describe(t)}`);
  }
  const shape = (schemas as unknown as Record<string, AnyShape>)[t] as AnyShape;
  return { v: PROTOCOL_VERSION, t, ...fields(raw, shape, `${t}: `, contextOf(limits), ['v', 't']) } as unknown as U;
}

function decode<U extends { t: string }>(bytes: Uint8Array, schemas: Schemas<U>, limits: FrameLimits): U {
  if (!(bytes instanceof Uint8Array)) throw new CellularError('PROTO_ERR_MALFORMED', `a frame must be binary, received ${describe(bytes)}`);
  if (bytes.length > limits.maxFrameBytes) {
    throw new CellularError('PROTO_ERR_TOO_LARGE', `the frame is ${bytes.length} bytes, more than messenger.maxFrameBytes (${limits.maxFrameBytes})`);
  }
  let raw: unknown;
  try {
    raw = codec.unpack(bytes);
  } catch (cause) {
    throw new CellularError('PROTO_ERR_MALFORMED', 'the frame is not one msgpack value', { cause });
  }
  return checkFrame(raw, schemas, limits, true);
}

const encode = <U extends { t: string }>(value: U, schemas: Schemas<U>): Uint8Array => codec.pack(checkFrame(value, schemas, UNLIMITED, false));

/** Decodes and checks a frame from a client; throws CellularError with a PROTO_ERR_* code, nothing else. */
export function decodeClientFrame(bytes: Uint8Array, limits: FrameLimits): ClientFrame {
  return decode(bytes, CLIENT, limits);
}

/** Checks and encodes a frame to a client; a bad frame (a server bug) throws PROTO_ERR_*. */
export function encodeServerFrame(frame: ServerFrame): Uint8Array {
  return encode(frame, SERVER);
}

/** Decodes and checks a frame from the server (the client's side); throws PROTO_ERR_*. */
export function decodeServerFrame(bytes: Uint8Array): ServerFrame {
  return decode(bytes, SERVER, UNLIMITED);
}

/** Checks and encodes a frame to the server; a bad frame throws PROTO_ERR_*. */
export function encodeClientFrame(frame: ClientFrame): Uint8Array {
  return encode(frame, CLIENT);
}

/** The `error` frame for anything thrown: a CellularError keeps its code and message, anything else says no more than that it failed. */
export function errorFrame(e: unknown, id?: number): ServerFrameOf<'error'> {
  const known = e instanceof CellularError;
  const out: ServerFrameOf<'error'> = {
    v: PROTOCOL_VERSION,
    t: 'error',
    code: known ? e.code : 'CELL_ERR_REMOTE',
    message: known ? e.message.slice(0, 1024) : 'the server failed to handle the request',
  };
  if (typeof id === 'number' && Number.isSafeInteger(id) && id >= 1 && id <= MAX_ID) out.id = id;
  return out;
}

// ---- frameIdOf: reads msgpack headers only, so a huge or broken frame costs next to nothing

/** Payload-free msgpack types and their whole length in bytes. */
const FIXED_LENGTH: Readonly<Record<number, number>> = {
  0xc0: 1, 0xc2: 1, 0xc3: 1, 0xcc: 2, 0xd0: 2, 0xcd: 3, 0xd1: 3, 0xce: 5, 0xd2: 5, 0xca: 5,
  0xcf: 9, 0xd3: 9, 0xcb: 9, 0xd4: 3, 0xd5: 4, 0xd6: 6, 0xd7: 10, 0xd8: 18,
};

/** Where the value at `pos` ends (scalars, strings, bins, exts), or how many values follow its header (arrays, maps). */
function header(view: DataView, pos: number): { end: number; items: number } {
  const b = view.getUint8(pos);
  const fixed = FIXED_LENGTH[b];
  if (fixed !== undefined) return { end: pos + fixed, items: 0 };
  if (b <= 0x7f || b >= 0xe0) return { end: pos + 1, items: 0 };
  if (b >= 0xa0 && b <= 0xbf) return { end: pos + 1 + (b & 0x1f), items: 0 };
  if (b >= 0x90 && b <= 0x9f) return { end: pos + 1, items: b & 0x0f };
  if (b >= 0x80 && b <= 0x8f) return { end: pos + 1, items: 2 * (b & 0x0f) };
  switch (b) {
    case 0xd9:
    case 0xc4:
      return { end: pos + 2 + view.getUint8(pos + 1), items: 0 };
    case 0xda:
    case 0xc5:
      return { end: pos + 3 + view.getUint16(pos + 1), items: 0 };
    case 0xdb:
    case 0xc6:
      return { end: pos + 5 + view.getUint32(pos + 1), items: 0 };
    case 0xc7:
      return { end: pos + 3 + view.getUint8(pos + 1), items: 0 };
    case 0xc8:
      return { end: pos + 4 + view.getUint16(pos + 1), items: 0 };
    case 0xc9:
      return { end: pos + 6 + view.getUint32(pos + 1), items: 0 };
    case 0xdc:
      return { end: pos + 3, items: view.getUint16(pos + 1) };
    case 0xdd:
      return { end: pos + 5, items: view.getUint32(pos + 1) };
    case 0xde:
      return { end: pos + 3, items: 2 * view.getUint16(pos + 1) };
    case 0xdf:
      return { end: pos + 5, items: 2 * view.getUint32(pos + 1) };
  }
  throw new RangeError('0xc1 is not msgpack');
}

/** Skips one whole value, nested ones included, without recursion. */
function skip(view: DataView, pos: number): number {
  for (let pending = 1; pending > 0; pending--) {
    const h = header(view, pos);
    pending += h.items;
    pos = h.end;
    if (pos > view.byteLength) throw new RangeError('truncated');
  }
  return pos;
}

/** A number at `pos`, as msgpackr would read it (int64 as number), or undefined for anything else. */
function number(view: DataView, pos: number): number | undefined {
  const b = view.getUint8(pos);
  if (b <= 0x7f) return b;
  switch (b) {
    case 0xcc: return view.getUint8(pos + 1);
    case 0xcd: return view.getUint16(pos + 1);
    case 0xce: return view.getUint32(pos + 1);
    case 0xcf: return Number(view.getBigUint64(pos + 1));
    case 0xd0: return view.getInt8(pos + 1);
    case 0xd1: return view.getInt16(pos + 1);
    case 0xd2: return view.getInt32(pos + 1);
    case 0xd3: return Number(view.getBigInt64(pos + 1));
    case 0xca: return view.getFloat32(pos + 1);
    case 0xcb: return view.getFloat64(pos + 1);
  }
  return undefined;
}

/** The request id of a frame that failed to decode, when it can be read (so the error frame can name it). */
export function frameIdOf(bytes: Uint8Array): number | undefined {
  try {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const first = view.getUint8(0);
    if (!((first >= 0x80 && first <= 0x8f) || first === 0xde || first === 0xdf)) return undefined;
    let { end: pos, items } = header(view, 0);
    for (; items > 0; items -= 2) {
      // The key "id" as fixstr or str8; the first one found counts.
      const isId = (bytes[pos] === 0xa2 && bytes[pos + 1] === 0x69 && bytes[pos + 2] === 0x64) || (bytes[pos] === 0xd9 && bytes[pos + 1] === 2 && bytes[pos + 2] === 0x69 && bytes[pos + 3] === 0x64);
      pos = skip(view, pos);
      if (isId) {
        const n = number(view, pos);
        return n !== undefined && Number.isSafeInteger(n) && n >= 1 && n <= MAX_ID ? n : undefined;
      }
      pos = skip(view, pos);
    }
    return undefined;
  } catch {
    return undefined;
  }
}
