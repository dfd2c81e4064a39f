/**
 * Backup and restore of one organism's JetStream state: every stream and KV bucket whose
 * name carries its id (`org_<id>_…`, a bucket B being the stream `KV_B`). It uses the
 * server's own snapshot and restore API (what `nats stream backup/restore` uses), not a
 * re-publish, so sequence numbers survive: a user's read cursor is a stream sequence, and
 * a KV entry's revision is one too.
 *
 * A backup is a directory (0700): one snapshot file per stream (0600, the server's bytes
 * as they came) and `manifest.json`, written last, so a directory with a manifest holds a
 * complete backup. Restore checks the whole manifest and every file's size and sha256
 * before it touches the server, so a damaged backup creates nothing.
 *
 * Protocol, as nats-server 2.9.10 speaks it (measured; test/organism/grow/backup.test.ts):
 * - `$JS.API.STREAM.SNAPSHOT.<stream>` `{deliver_subject, chunk_size, jsck}` answers
 *   `{config, state}` (or `{error}`), then the chunks arrive on deliver_subject, each with a
 *   reply subject to ack (the server's flow-control window), and an empty message without
 *   reply ends it. Later servers may end with a status header instead; an error status fails.
 *   A memory stream cannot be snapshotted ("no impl"): only its config is kept.
 * - `$JS.API.STREAM.RESTORE.<stream>` `{config, state}` answers `{deliver_subject}`; each
 *   chunk is a request there (an empty reply acks it), and an empty message ends it; its
 *   reply is the new stream's info or an error.
 */
import { createHash } from 'node:crypto';
import { chmodSync, closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { jetstreamManager, type StreamInfo } from '@nats-io/jetstream';
import { createInbox, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { CellularError, throwIfAborted, type ErrorCode } from '../wire/errors.ts';
import { Namespace } from '../kernel/namespace.ts';

export const MANIFEST_FILE = 'manifest.json';
export const BACKUP_FORMAT = 'cellular-backup';
export const BACKUP_VERSION = 1;
/** The server's default; well under any max_payload (the private broker's is 1 MiB). */
export const CHUNK_BYTES = 128 * 1024;

/** What the manifest keeps of a stream's state (the rest changes with every write and is not needed). */
export interface SnapshotState {
  messages: number;
  bytes: number;
  first_seq: number;
  last_seq: number;
}

export interface ManifestStream {
  /** The stream's name (`KV_org_<id>_<bucket>` for a bucket). */
  name: string;
  /** The stream's configuration as the server gave it with the snapshot. */
  config: Record<string, unknown> & { name: string; storage: 'file' | 'memory' };
  state: SnapshotState;
  /** The snapshot file in the backup directory; null for a memory stream (config only). */
  file: string | null;
  /** The file's size in bytes (0 without a file). */
  size: number;
  /** Lowercase hex sha256 of the file; null without a file. */
  sha256: string | null;
}

export interface Manifest {
  format: typeof BACKUP_FORMAT;
  version: typeof BACKUP_VERSION;
  organism: string;
  /** When the backup was taken (ISO 8601). */
  created: string;
  /** The nats-server version that made the snapshots. */
  server: string;
  streams: ManifestStream[];
}

export interface Progress {
  stream: string;
  /** Snapshot bytes written (backup) or sent (restore) so far. */
  bytes: number;
  /** The file's size when known (restore). */
  total?: number;
  /** True once for each stream, when it is complete. */
  done: boolean;
  /** Set on the final call: the stream's state as the server reports it. */
  state?: SnapshotState;
  /** Set when the stream has no snapshot (memory storage): only its config was kept or recreated. */
  configOnly?: boolean;
}

export interface BackupOptions {
  signal?: AbortSignal;
  progress?: (p: Progress) => void;
  /** Longest wait for one API answer or between two chunks, ms. @default 10000 */
  timeoutMs?: number;
}

export interface RestoreOptions extends BackupOptions {
  /** Delete the backup's streams first when they exist; without it they stop the restore. */
  force?: boolean;
}

const fail = (code: ErrorCode, message: string, cause?: unknown) => new CellularError(code, message, cause === undefined ? {} : { cause });

/** The streams and buckets of organism `id` among `names`. */
export function organismStreams(names: Iterable<string>, id: string): string[] {
  const ns = new Namespace(id);
  const own = ns.stream('');
  return [...names].filter((n) => n.startsWith(own) || n.startsWith(`KV_${own}`));
}

/** Buckets first: the cursors must not point past the messages a backup of a live organism holds. */
function backupOrder(a: string, b: string): number {
  return Number(b.startsWith('KV_')) - Number(a.startsWith('KV_')) || a.localeCompare(b);
}

const fileOf = (stream: string) => `${stream}.snapshot`;

/** Snapshots every stream and bucket of organism `id` into `dir`; returns the manifest written. */
export async function backupOrganism(nc: NatsConnection, id: string | Namespace, dir: string, options: BackupOptions = {}): Promise<Manifest> {
  const ns = typeof id === 'string' ? new Namespace(id) : id;
  const timeoutMs = options.timeoutMs ?? 10_000;
  prepareDir(dir);
  throwIfAborted(options.signal);
  const jsm = await jetstreamManager(nc, { timeout: timeoutMs });
  const infos = new Map<string, StreamInfo>();
  for await (const si of jsm.streams.list()) infos.set(si.config.name, si);
  const streams = organismStreams(infos.keys(), ns.id).sort(backupOrder);
  if (streams.length === 0) throw fail('BACKUP_ERR_SNAPSHOT', `organism ${ns.id} has no streams or buckets on this server (wrong --id or --nats?)`);
  const written: string[] = [];
  try {
    const entries: ManifestStream[] = [];
    for (const name of streams) {
      throwIfAborted(options.signal);
      const info = infos.get(name)!;
      // A memory stream (presence) has no snapshot on the server ("no impl"): keep its config, recreate it empty.
      const entry = info.config.storage === 'memory' ? memoryEntry(info, options) : await snapshotStream(nc, name, dir, timeoutMs, options);
      if (entry.file) written.push(entry.file);
      entries.push(entry);
    }
    const manifest: Manifest = { format: BACKUP_FORMAT, version: BACKUP_VERSION, organism: ns.id, created: new Date().toISOString(), server: nc.info?.version ?? 'unknown', streams: entries };
    // Written last and renamed into place: a manifest is never half there, nor ahead of its files.
    writeDurably(join(dir, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
    return manifest;
  } catch (e) {
    // A failed backup leaves no snapshot files a later backup into this directory would trip over.
    for (const f of written) rmSync(join(dir, f), { force: true });
    throw e;
  }
}

/** The output directory: created 0700, or an existing empty one (a backup is never overwritten). */
function prepareDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (readdirSync(dir).length > 0) throw fail('BACKUP_ERR_DIR', `${dir} is not empty: back up into a new or empty directory`);
    chmodSync(dir, 0o700);
  } catch (e) {
    if (e instanceof CellularError) throw e;
    throw fail('BACKUP_ERR_DIR', `cannot create ${dir}: ${(e as Error).message}`, e);
  }
}

function writeDurably(path: string, text: string): void {
  const tmp = `${path}.part`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

/** One stream's snapshot, streamed to its file as it arrives (a stream may be larger than memory). */
async function snapshotStream(nc: NatsConnection, name: string, dir: string, timeoutMs: number, options: BackupOptions): Promise<ManifestStream> {
  const deliver = createInbox((nc as NatsConnection & { options?: { inboxPrefix?: string } }).options?.inboxPrefix); // where this connection may receive (organism/kernel/permissions.ts)
  const file = fileOf(name);
  const part = join(dir, `${file}.part`);
  const hash = createHash('sha256');
  let fd: number | undefined;
  let bytes = 0;
  let failure: CellularError | undefined;
  let finished!: () => void;
  let lastChunk = Date.now();
  const ended = new Promise<void>((resolve) => (finished = resolve));
  // Chunks are handled in the callback, synchronously, so they are written in order.
  const sub = nc.subscribe(deliver, {
    callback: (err, m: Msg) => {
      if (failure) return;
      lastChunk = Date.now();
      if (err) {
        failure = fail('BACKUP_ERR_SNAPSHOT', `snapshot of ${name} failed: ${err.message}`, err);
        return finished();
      }
      if (m.data.length === 0) {
        const h = m.headers;
        // 2.9 ends with a bare empty message; later servers may say 204 EOF, or an error status.
        if (h && h.code >= 400) failure = fail('BACKUP_ERR_SNAPSHOT', `snapshot of ${name} failed on the server: ${h.code} ${h.description}`);
        return finished();
      }
      try {
        fd ??= openSync(part, 'w', 0o600);
        writeSync(fd, m.data);
      } catch (e) {
        failure = fail('BACKUP_ERR_DIR', `cannot write ${part}: ${(e as Error).message}`, e);
        return finished();
      }
      hash.update(m.data);
      bytes += m.data.length;
      // The ack frees the server's flow-control window (it stalls past 16 MiB unacked).
      if (m.reply) m.respond();
      options.progress?.({ stream: name, bytes, done: false });
    },
  });
  try {
    // The server waits only ~2 s for interest in deliver_subject: make sure ours is there first.
    await nc.flush();
    let answer: Record<string, unknown>;
    try {
      const r = await nc.request(`$JS.API.STREAM.SNAPSHOT.${name}`, JSON.stringify({ deliver_subject: deliver, chunk_size: CHUNK_BYTES, jsck: false }), { timeout: timeoutMs });
      answer = r.json<Record<string, unknown>>();
    } catch (e) {
      throw fail('BACKUP_ERR_SNAPSHOT', `snapshot of ${name}: no answer from JetStream within ${timeoutMs} ms (${(e as Error).message})`, e);
    }
    const config = answer.config as ManifestStream['config'] | undefined;
    const state = answer.state as Record<string, unknown> | undefined;
    if (answer.error !== undefined || !config || !state) {
      const description = (answer.error as { description?: string } | undefined)?.description ?? 'no config or state in the answer';
      throw fail('BACKUP_ERR_SNAPSHOT', `the server refused to snapshot ${name}: ${description}`);
    }
    // Chunks may stop coming (server gone, interest lost): each gap is bounded, not the whole.
    lastChunk = Math.max(lastChunk, Date.now());
    for (;;) {
      const gap = await Promise.race([ended.then(() => false), abortable(options.signal, 100).then(() => true)]);
      if (!gap) break;
      throwIfAborted(options.signal);
      if (Date.now() - lastChunk > timeoutMs) throw fail('BACKUP_ERR_SNAPSHOT', `snapshot of ${name} stalled: nothing for ${timeoutMs} ms after ${bytes} bytes`);
    }
    if (failure) throw failure;
    if (fd === undefined) fd = openSync(part, 'w', 0o600); // an empty snapshot is still a file
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(part, join(dir, file));
    const kept = keptState(state);
    options.progress?.({ stream: name, bytes, done: true, state: kept });
    return { name, config, state: kept, file, size: bytes, sha256: hash.digest('hex') };
  } finally {
    sub.unsubscribe();
    if (fd !== undefined) closeSync(fd);
    rmSync(part, { force: true });
  }
}

function memoryEntry(info: StreamInfo, options: BackupOptions): ManifestStream {
  const name = info.config.name;
  const state = keptState(info.state as unknown as Record<string, unknown>);
  options.progress?.({ stream: name, bytes: 0, done: true, state, configOnly: true });
  return { name, config: info.config as unknown as ManifestStream['config'], state, file: null, size: 0, sha256: null };
}

function keptState(s: Record<string, unknown>): SnapshotState {
  const n = (k: string) => (typeof s[k] === 'number' && Number.isSafeInteger(s[k]) && (s[k] as number) >= 0 ? (s[k] as number) : 0);
  return { messages: n('messages'), bytes: n('bytes'), first_seq: n('first_seq'), last_seq: n('last_seq') };
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function abortable(signal: AbortSignal | undefined, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

// ---------------------------------------------------------------------------------------
// The manifest: everything in it is checked, since a backup directory is outside input.

const STREAM_NAME = /^[A-Za-z0-9_-]{1,255}$/;
const SHA256 = /^[0-9a-f]{64}$/;
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype;
}

function exactKeys(v: Record<string, unknown>, keys: readonly string[], where: string): void {
  for (const k of Object.keys(v)) if (!keys.includes(k)) throw bad(`${where} has an unknown field ${JSON.stringify(k)}`);
  for (const k of keys) if (!Object.hasOwn(v, k)) throw bad(`${where}.${k} is missing`);
}

const bad = (message: string) => fail('BACKUP_ERR_MANIFEST', `manifest: ${message}`);
const shown = (v: unknown) => {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 60)}…` : s;
};
const count = (v: unknown, where: string): number => {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw bad(`${where} must be a non-negative integer, received ${shown(v)}`);
  return v;
};

/**
 * Parses and checks a manifest's text. With `organism`, the backup must be of that
 * organism (stream names and subjects carry the id: a backup cannot change it).
 * Throws BACKUP_ERR_MANIFEST naming the first field that is wrong.
 */
export function parseManifest(text: string, organism?: string): Manifest {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (cause) {
    throw fail('BACKUP_ERR_MANIFEST', `manifest: not JSON (${(cause as Error).message})`, cause);
  }
  if (!isPlainObject(v)) throw bad(`must be a JSON object, received ${shown(v)}`);
  exactKeys(v, ['format', 'version', 'organism', 'created', 'server', 'streams'], 'manifest');
  if (v.format !== BACKUP_FORMAT) throw bad(`format must be ${JSON.stringify(BACKUP_FORMAT)}, received ${shown(v.format)}`);
  if (v.version !== BACKUP_VERSION) throw bad(`version must be ${BACKUP_VERSION} (this cellular reads no other), received ${shown(v.version)}`);
  if (typeof v.organism !== 'string') throw bad(`organism must be a string, received ${shown(v.organism)}`);
  let ns: Namespace;
  try {
    ns = new Namespace(v.organism);
  } catch {
    throw bad(`organism is not a valid organism id: ${shown(v.organism)}`);
  }
  if (organism !== undefined && v.organism !== organism) throw bad(`this is a backup of organism ${v.organism}, not ${organism}`);
  if (typeof v.created !== 'string' || !ISO_TIME.test(v.created) || Number.isNaN(Date.parse(v.created))) throw bad(`created must be an ISO 8601 UTC time, received ${shown(v.created)}`);
  if (typeof v.server !== 'string' || v.server.length > 64) throw bad(`server must be a version string, received ${shown(v.server)}`);
  if (!Array.isArray(v.streams) || v.streams.length === 0) throw bad(`streams must be a non-empty array, received ${shown(v.streams)}`);
  const names = new Set<string>();
  const streams = v.streams.map((s, i) => {
    const entry = parseStream(s, `streams[${i}]`, ns);
    if (names.has(entry.name)) throw bad(`streams[${i}].name ${entry.name} is listed twice`);
    names.add(entry.name);
    return entry;
  });
  return { format: BACKUP_FORMAT, version: BACKUP_VERSION, organism: v.organism, created: v.created, server: v.server, streams };
}

function parseStream(s: unknown, where: string, ns: Namespace): ManifestStream {
  if (!isPlainObject(s)) throw bad(`${where} must be an object, received ${shown(s)}`);
  exactKeys(s, ['name', 'config', 'state', 'file', 'size', 'sha256'], where);
  const name = s.name;
  if (typeof name !== 'string' || !STREAM_NAME.test(name) || organismStreams([name], ns.id).length === 0) {
    throw bad(`${where}.name must be a stream of organism ${ns.id} (${ns.stream('…')} or KV_${ns.bucket('…')}), received ${shown(name)}`);
  }
  const config = s.config;
  if (!isPlainObject(config)) throw bad(`${where}.config must be an object, received ${shown(config)}`);
  if (config.name !== name) throw bad(`${where}.config.name must be ${name}, received ${shown(config.name)}`);
  if (config.storage !== 'file' && config.storage !== 'memory') throw bad(`${where}.config.storage must be "file" or "memory", received ${shown(config.storage)}`);
  if (config.subjects !== undefined && (!Array.isArray(config.subjects) || !config.subjects.every((x) => typeof x === 'string' && x.length > 0))) {
    throw bad(`${where}.config.subjects must be an array of subjects, received ${shown(config.subjects)}`);
  }
  const state = s.state;
  if (!isPlainObject(state)) throw bad(`${where}.state must be an object, received ${shown(state)}`);
  exactKeys(state, ['messages', 'bytes', 'first_seq', 'last_seq'], `${where}.state`);
  const kept: SnapshotState = {
    messages: count(state.messages, `${where}.state.messages`),
    bytes: count(state.bytes, `${where}.state.bytes`),
    first_seq: count(state.first_seq, `${where}.state.first_seq`),
    last_seq: count(state.last_seq, `${where}.state.last_seq`),
  };
  if (kept.messages > 0 && kept.first_seq > kept.last_seq) throw bad(`${where}.state.first_seq (${kept.first_seq}) is past last_seq (${kept.last_seq})`);
  if (kept.messages > 0 && kept.messages > kept.last_seq - kept.first_seq + 1) throw bad(`${where}.state.messages (${kept.messages}) exceeds the sequence range ${kept.first_seq}-${kept.last_seq}`);
  const size = count(s.size, `${where}.size`);
  if (config.storage === 'memory') {
    // A memory stream has no snapshot: only its config is kept.
    if (s.file !== null || s.sha256 !== null || size !== 0) throw bad(`${where} is a memory stream: file and sha256 must be null and size 0`);
  } else {
    if (s.file !== fileOf(name)) throw bad(`${where}.file must be ${JSON.stringify(fileOf(name))}, received ${shown(s.file)}`);
    if (typeof s.sha256 !== 'string' || !SHA256.test(s.sha256)) throw bad(`${where}.sha256 must be 64 lowercase hex digits, received ${shown(s.sha256)}`);
  }
  return { name, config: config as ManifestStream['config'], state: kept, file: s.file as string | null, size, sha256: s.sha256 as string | null };
}

/** Reads and checks `<dir>/manifest.json`. */
export function readManifest(dir: string, organism?: string): Manifest {
  let text: string;
  try {
    text = readFileSync(join(dir, MANIFEST_FILE), 'utf8');
  } catch (cause) {
    throw fail('BACKUP_ERR_MANIFEST', `cannot read ${join(dir, MANIFEST_FILE)}: ${(cause as Error).message} (is ${dir} a backup?)`, cause);
  }
  return parseManifest(text, organism);
}

/** Checks every snapshot file against the manifest: present, of its size, of its sha256. */
export function verifyFiles(dir: string, manifest: Manifest, signal?: AbortSignal): void {
  for (const s of manifest.streams) {
    if (s.file === null) continue;
    throwIfAborted(signal);
    const path = join(dir, s.file);
    let size: number;
    try {
      size = statSync(path).size;
    } catch (cause) {
      throw fail('BACKUP_ERR_CHECKSUM', `${path} is missing: the backup is incomplete`, cause);
    }
    if (size !== s.size) throw fail('BACKUP_ERR_CHECKSUM', `${path} has ${size} bytes, the manifest says ${s.size}: the backup is damaged`);
    const hash = createHash('sha256');
    eachChunk(path, (chunk) => hash.update(chunk));
    const sum = hash.digest('hex');
    if (sum !== s.sha256) throw fail('BACKUP_ERR_CHECKSUM', `${path} has sha256 ${sum}, the manifest says ${s.sha256}: the backup is damaged`);
  }
}

function eachChunk(path: string, each: (chunk: Buffer) => void): void {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(CHUNK_BYTES);
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      each(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * Restores organism `id` from `dir`. The manifest and every file are checked first; then
 * every stream of the backup must be absent (or `force` deletes it). A stream that fails
 * to restore takes back the ones this call created, so a failed restore leaves no half
 * organism (with `force`, what was deleted stays deleted).
 */
export async function restoreOrganism(nc: NatsConnection, id: string, dir: string, options: RestoreOptions = {}): Promise<Manifest> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const manifest = readManifest(dir, id);
  verifyFiles(dir, manifest, options.signal);
  throwIfAborted(options.signal);
  const jsm = await jetstreamManager(nc, { timeout: timeoutMs });
  const present = new Set<string>();
  for await (const name of jsm.streams.names()) present.add(name);
  const clashes = manifest.streams.map((s) => s.name).filter((n) => present.has(n));
  if (clashes.length > 0 && !options.force) {
    throw fail('BACKUP_ERR_EXISTS', `${clashes.join(', ')} already exist${clashes.length === 1 ? 's' : ''} on this server: restore into a server without them, or pass --force to delete them first`);
  }
  for (const name of clashes) {
    throwIfAborted(options.signal);
    await jsm.streams.delete(name);
  }
  const created: string[] = [];
  try {
    for (const s of manifest.streams) {
      throwIfAborted(options.signal);
      if (s.file === null) {
        // Memory streams come back empty, from their config (soft state such as presence).
        await jsm.streams.add(s.config as Parameters<typeof jsm.streams.add>[0]);
        created.push(s.name);
        options.progress?.({ stream: s.name, bytes: 0, total: 0, done: true, configOnly: true, state: { messages: 0, bytes: 0, first_seq: 0, last_seq: 0 } });
        continue;
      }
      await restoreStream(nc, s, dir, timeoutMs, options, () => created.push(s.name));
    }
  } catch (e) {
    for (const name of created) await jsm.streams.delete(name).catch(() => false);
    throw e;
  }
  return manifest;
}

async function restoreStream(nc: NatsConnection, s: ManifestStream, dir: string, timeoutMs: number, options: RestoreOptions, started: () => void): Promise<void> {
  const path = join(dir, s.file!);
  let answer: { deliver_subject?: unknown; error?: { description?: string } };
  try {
    const r = await nc.request(`$JS.API.STREAM.RESTORE.${s.name}`, JSON.stringify({ config: s.config, state: s.state }), { timeout: timeoutMs });
    answer = r.json();
  } catch (e) {
    throw fail('BACKUP_ERR_RESTORE', `restore of ${s.name}: no answer from JetStream within ${timeoutMs} ms (${(e as Error).message})`, e);
  }
  if (answer.error || typeof answer.deliver_subject !== 'string' || answer.deliver_subject === '') {
    const why = answer.error?.description ?? 'no deliver_subject in the answer';
    throw fail(/already in use/.test(why) ? 'BACKUP_ERR_EXISTS' : 'BACKUP_ERR_RESTORE', `the server refused to restore ${s.name}: ${why}`);
  }
  const deliver = answer.deliver_subject;
  // From here the server holds a restore for this name; whatever happens next, undo it.
  started();
  const maxPayload = nc.info?.max_payload ?? 1024 * 1024;
  const chunkBytes = Math.max(1024, Math.min(CHUNK_BYTES, maxPayload - 1024));
  const fd = openSync(path, 'r');
  let sent = 0;
  try {
    const buf = Buffer.allocUnsafe(chunkBytes);
    for (;;) {
      throwIfAborted(options.signal);
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      let ack: Msg;
      try {
        // Each chunk is a request: the server's empty reply says it is on disk there.
        ack = await nc.request(deliver, buf.subarray(0, n), { timeout: timeoutMs });
      } catch (e) {
        throw fail('BACKUP_ERR_RESTORE', `restore of ${s.name}: chunk at byte ${sent} not acknowledged within ${timeoutMs} ms (${(e as Error).message})`, e);
      }
      if (ack.data.length > 0 || (ack.headers?.code ?? 0) >= 400) {
        throw fail('BACKUP_ERR_RESTORE', `restore of ${s.name} failed on the server at byte ${sent}: ${ack.string() || `${ack.headers?.code} ${ack.headers?.description}`}`);
      }
      sent += n;
      options.progress?.({ stream: s.name, bytes: sent, total: s.size, done: false });
    }
  } finally {
    closeSync(fd);
  }
  // The empty message makes the server unpack what it received; a large stream takes a while.
  const finishMs = Math.max(timeoutMs * 3, Math.ceil(s.size / (4 * 1024 * 1024)) * 1000);
  let info: { error?: { description?: string }; state?: Record<string, unknown> };
  try {
    info = (await nc.request(deliver, new Uint8Array(0), { timeout: finishMs })).json();
  } catch (e) {
    throw fail('BACKUP_ERR_RESTORE', `restore of ${s.name}: the server did not finish within ${finishMs} ms (${(e as Error).message})`, e);
  }
  if (info.error || !info.state) throw fail('BACKUP_ERR_RESTORE', `the server could not restore ${s.name}: ${info.error?.description ?? 'no stream info in its answer'}`);
  const state = keptState(info.state);
  // Sequences are the point of a snapshot restore: a stream that came back behind the manifest is wrong.
  if (state.last_seq < s.state.last_seq) {
    throw fail('BACKUP_ERR_RESTORE', `${s.name} came back with last sequence ${state.last_seq}, the backup had ${s.state.last_seq}`);
  }
  options.progress?.({ stream: s.name, bytes: sent, total: s.size, done: true, state });
}

/** `1.5 MiB` and the like, for progress lines. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** Progress as lines (the CLI's stderr): one per finished stream, and one a second while a large one runs. */
export function progressPrinter(verb: 'backup' | 'restore', say: (line: string) => void, everyMs = 1000): (p: Progress) => void {
  let last = Date.now();
  return (p) => {
    if (p.done) {
      last = Date.now();
      if (p.configOnly) return say(`${verb} ${p.stream}: memory storage, config only (it comes back empty)`);
      const s = p.state;
      const range = s && s.messages > 0 ? `, seq ${s.first_seq}-${s.last_seq}` : '';
      return say(`${verb} ${p.stream}: ${formatBytes(p.bytes)}${s ? `, ${s.messages} messages${range}` : ''}`);
    }
    if (Date.now() - last < everyMs) return;
    last = Date.now();
    say(`${verb} ${p.stream}: ${formatBytes(p.bytes)}${p.total !== undefined ? ` of ${formatBytes(p.total)}` : ''}…`);
  };
}
