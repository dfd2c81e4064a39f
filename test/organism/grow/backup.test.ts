/**
 * `cellular backup` / `cellular restore`: real streams and buckets (the organism's own,
 * made by ensureStores and ensureMessengerStores) on a real nats-server, snapshotted with
 * the server's snapshot API and restored into a fresh nats-server with its own store; every
 * message and KV value must come back at its sequence. Damaged backups and existing streams
 * are refused before anything is created. The manifest parser is fuzzed.
 */
import { cpSync, readFileSync, readdirSync, statSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import { jetstream, jetstreamManager, type StoredMsg } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect, headers, type NatsConnection } from '@nats-io/transport-node';
import { backupOrganism, MANIFEST_FILE, parseManifest, restoreOrganism, type Manifest, type ManifestStream, type Progress } from '../../../organism/grow/backup.ts';
import { CellularError, type ErrorCode } from '../../../organism/wire/errors.ts';
import { defaultGenome } from '../../../organism/kernel/genome/index.ts';
import { Namespace } from '../../../organism/kernel/namespace.ts';
import { MessengerSubjects } from '../../../cells/messenger/subjects.ts';
import { ensureStores } from '../../../organism/kernel/stores.ts';
import { ensureMessengerStores } from '../../../cells/messenger/stores.ts';
import { startNats, tempDir, uniqueId } from '../../helpers/nats.ts';
import { cliAsync, grow } from '../../helpers/grow.ts';

async function nats(t: ExecutionContext): Promise<{ nc: NatsConnection; url: string }> {
  const broker = await startNats(t);
  const nc = await connect({ servers: broker.url });
  t.teardown(() => nc.close());
  return { nc, url: broker.url };
}

async function codeOf(p: Promise<unknown>): Promise<ErrorCode | 'resolved' | string> {
  try {
    await p;
    return 'resolved';
  } catch (e) {
    return e instanceof CellularError ? e.code : `not a CellularError: ${(e as Error).stack}`;
  }
}

async function streamNames(nc: NatsConnection): Promise<string[]> {
  const names: string[] = [];
  for await (const n of (await jetstreamManager(nc)).streams.names()) names.push(n);
  return names.sort();
}

/** An organism's real stores with real data: accounts, cursors, sessions, a presence entry, lineage, ~600 KiB of inbox messages with a gap. */
async function populate(nc: NatsConnection, id: string) {
  const ns = new Namespace(id);
  const { lineage, homeostasis } = await ensureStores(nc, ns);
  const m = await ensureMessengerStores(nc, ns, defaultGenome().messenger);
  await m.accounts.put('alice', JSON.stringify({ user: 'alice', hash: 'x' }));
  await m.accounts.put('bob', JSON.stringify({ user: 'bob', hash: 'y' }));
  await m.accounts.put('bob', JSON.stringify({ user: 'bob', hash: 'z' })); // revision 3 replaces 2
  await m.accounts.put('carol', 'gone');
  await m.accounts.delete('carol');
  await m.directory.put('alice', randomBytes(64));
  await m.sessions.put('s1', 'alice');
  await m.contacts.put('alice', JSON.stringify(['bob']));
  await m.presence.put('u.alice.r1', '1');
  await lineage.put('cell-1', randomBytes(200));
  await homeostasis.put('echo', JSON.stringify({ n: 1 }));
  const js = jetstream(nc);
  // Ciphertext-like bodies (incompressible) make the snapshot several 128 KiB chunks.
  for (let i = 0; i < 600; i++) {
    const h = headers();
    h.set('Nats-Msg-Id', `m${i}`);
    await js.publish(new MessengerSubjects(ns).inbox(['alice', 'bob', 'carol'][i % 3]!), randomBytes(1024), { headers: h });
  }
  const jsm = await jetstreamManager(nc);
  await jsm.streams.deleteMessage(m.messages, 100); // a gap: sequences are not renumbered
  await m.cursors.put('alice', '250');
  await m.cursors.put('bob', '599');
  return { ns, stores: m };
}

function message(m: StoredMsg) {
  return { seq: m.seq, subject: m.subject, data: Buffer.from(m.data).toString('base64'), id: m.header?.get('Nats-Msg-Id') ?? null };
}

/** Every message of `stream` by sequence (null where there is none). */
async function contents(nc: NatsConnection, stream: string) {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(stream);
  const out: (ReturnType<typeof message> | null)[] = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
    out.push(await jsm.streams.getMessage(stream, { seq }).then((m) => (m ? message(m) : null), () => null));
  }
  // An empty stream's first_seq is 0 as made and last_seq + 1 as restored: only last_seq says where it goes on.
  const first = info.state.messages > 0 ? info.state.first_seq : null;
  return { state: { messages: info.state.messages, first_seq: first, last_seq: info.state.last_seq }, out };
}

async function backupOf(t: ExecutionContext, nc: NatsConnection, id: string, progress?: (p: Progress) => void): Promise<{ dir: string; manifest: Manifest }> {
  const dir = join(tempDir(t, 'cellular-backup-'), 'backup');
  const manifest = await backupOrganism(nc, id, dir, progress ? { progress } : {});
  return { dir, manifest };
}

test('backup - a restore into a fresh nats-server brings back every message and KV value at its sequence', async (t) => {
  const a = await nats(t);
  const id = uniqueId('bk');
  const { ns, stores } = await populate(a.nc, id);
  // Another organism on the same server is not part of this one's backup.
  const other = uniqueId('ot');
  await ensureStores(a.nc, new Namespace(other));
  const events: Progress[] = [];
  const { dir, manifest } = await backupOf(t, a.nc, id, (p) => events.push(p));

  const names = await streamNames(a.nc);
  const ours = names.filter((n) => n.includes(`org_${id}_`));
  t.deepEqual(manifest.streams.map((s) => s.name).sort(), ours);
  t.false(manifest.streams.some((s) => s.name.includes(other)));
  t.is(manifest.organism, id);
  // Buckets come first, so a cursor never points past the messages of the same backup.
  const firstStream = manifest.streams.findIndex((s) => !s.name.startsWith('KV_'));
  t.true(manifest.streams.slice(firstStream).every((s) => !s.name.startsWith('KV_')));
  t.is(statSync(dir).mode & 0o777, 0o700);
  for (const f of readdirSync(dir)) t.is(statSync(join(dir, f)).mode & 0o777, 0o600, f);
  t.deepEqual(parseManifest(readFileSync(join(dir, MANIFEST_FILE), 'utf8'), id), manifest);
  const messages = manifest.streams.find((s) => s.name === stores.messages)!;
  t.deepEqual(messages.state, { messages: 599, bytes: messages.state.bytes, first_seq: 1, last_seq: 600 });
  t.true(messages.size > 3 * 128 * 1024, 'several chunks');
  const presence = manifest.streams.find((s) => s.name === `KV_${ns.bucket('presence')}`)!;
  t.is(presence.file, null, 'a memory stream keeps its config only');
  t.true(events.some((e) => e.stream === stores.messages && !e.done && e.bytes > 0));
  t.is(events.filter((e) => e.done).length, manifest.streams.length);

  const b = await nats(t);
  const restored: Progress[] = [];
  await restoreOrganism(b.nc, id, dir, { progress: (p) => restored.push(p) });
  t.deepEqual(await streamNames(b.nc), ours);
  t.is(restored.filter((e) => e.done).length, manifest.streams.length);
  for (const s of manifest.streams) {
    if (s.file === null) continue;
    const [before, after] = await Promise.all([contents(a.nc, s.name), contents(b.nc, s.name)]);
    t.deepEqual(after, before, s.name);
  }
  const seq100 = (await contents(b.nc, stores.messages)).out[99];
  t.is(seq100, null, 'the deleted message stays deleted');

  // KV: same values at the same revisions, deletes kept as deletes.
  const kvb = new Kvm(b.nc);
  const accounts = await kvb.open(ns.bucket('accounts'));
  t.is((await accounts.get('bob'))?.revision, 3);
  t.is((await accounts.get('bob'))?.string(), JSON.stringify({ user: 'bob', hash: 'z' }));
  t.is((await accounts.get('carol'))?.operation, 'DEL');
  t.is((await (await kvb.open(ns.bucket('cursors'))).get('alice'))?.string(), '250');
  const presenceB = await kvb.open(ns.bucket('presence'));
  t.is(await presenceB.get('u.alice.r1'), null, 'presence comes back empty');
  // The restored stream goes on from where it was, and still deduplicates by message id.
  const ack = await jetstream(b.nc).publish(new MessengerSubjects(ns).inbox('alice'), new Uint8Array([1]));
  t.is(ack.seq, 601);
  const h = headers();
  h.set('Nats-Msg-Id', 'm599');
  t.true((await jetstream(b.nc).publish(new MessengerSubjects(ns).inbox('alice'), new Uint8Array([2]), { headers: h })).duplicate);
});

test('restore - a damaged backup is refused before anything is created', async (t) => {
  const a = await nats(t);
  const id = uniqueId('bd');
  await populate(a.nc, id);
  const { dir, manifest } = await backupOf(t, a.nc, id);
  const b = await nats(t);
  const messages = manifest.streams.find((s) => s.name.endsWith('_messages'))!;
  const copy = (name: string) => {
    const d = join(tempDir(t), name);
    cpSync(dir, d, { recursive: true });
    return d;
  };

  const flipped = copy('flipped');
  const bytes = readFileSync(join(flipped, messages.file!));
  const at = bytes.length >> 1;
  bytes.writeUInt8(bytes.readUInt8(at) ^ 0x01, at);
  writeFileSync(join(flipped, messages.file!), bytes);
  t.is(await codeOf(restoreOrganism(b.nc, id, flipped)), 'BACKUP_ERR_CHECKSUM');

  const truncated = copy('truncated');
  truncateSync(join(truncated, messages.file!), messages.size - 1);
  t.is(await codeOf(restoreOrganism(b.nc, id, truncated)), 'BACKUP_ERR_CHECKSUM');

  const missing = copy('missing');
  unlinkSync(join(missing, manifest.streams[manifest.streams.length - 1]!.file ?? messages.file!));
  t.is(await codeOf(restoreOrganism(b.nc, id, missing)), 'BACKUP_ERR_CHECKSUM');

  const wrongSum = copy('wrong-sum');
  const edited = structuredClone(manifest);
  edited.streams.find((s) => s.name === messages.name)!.sha256 = '0'.repeat(64);
  writeFileSync(join(wrongSum, MANIFEST_FILE), JSON.stringify(edited));
  t.is(await codeOf(restoreOrganism(b.nc, id, wrongSum)), 'BACKUP_ERR_CHECKSUM');

  const noSum = copy('no-sum');
  const { sha256: _drop, ...unsummed } = edited.streams.find((s) => s.name === messages.name)!;
  writeFileSync(join(noSum, MANIFEST_FILE), JSON.stringify({ ...edited, streams: edited.streams.map((s) => (s.name === messages.name ? unsummed : s)) }));
  t.is(await codeOf(restoreOrganism(b.nc, id, noSum)), 'BACKUP_ERR_MANIFEST');

  const garbled = copy('garbled');
  writeFileSync(join(garbled, MANIFEST_FILE), '{"format": "cellular-backup", ');
  t.is(await codeOf(restoreOrganism(b.nc, id, garbled)), 'BACKUP_ERR_MANIFEST');
  const noManifest = copy('no-manifest');
  unlinkSync(join(noManifest, MANIFEST_FILE));
  t.is(await codeOf(restoreOrganism(b.nc, id, noManifest)), 'BACKUP_ERR_MANIFEST');
  // A backup restores only as the organism it was taken of (its subjects carry the id).
  t.is(await codeOf(restoreOrganism(b.nc, 'someone-else', dir)), 'BACKUP_ERR_MANIFEST');

  t.deepEqual(await streamNames(b.nc), [], 'nothing was created');
  await restoreOrganism(b.nc, id, dir);
  t.is((await streamNames(b.nc)).length, manifest.streams.length, 'the intact backup still restores');
});

test('restore - existing streams stop it unless forced, which brings back the backup state', async (t) => {
  const a = await nats(t);
  const id = uniqueId('bx');
  const { ns, stores } = await populate(a.nc, id);
  const { dir } = await backupOf(t, a.nc, id);
  // Written after the backup: a forced restore takes the organism back to before it.
  await jetstream(a.nc).publish(new MessengerSubjects(ns).inbox('alice'), new Uint8Array([9]));
  await stores.cursors.put('alice', '601');
  t.is(await codeOf(restoreOrganism(a.nc, id, dir)), 'BACKUP_ERR_EXISTS');
  const jsm = await jetstreamManager(a.nc);
  t.is((await jsm.streams.info(stores.messages)).state.last_seq, 601, 'refused without touching anything');

  await restoreOrganism(a.nc, id, dir, { force: true });
  t.is((await jsm.streams.info(stores.messages)).state.last_seq, 600);
  t.is((await (await new Kvm(a.nc).open(ns.bucket('cursors'))).get('alice'))?.string(), '250');
});

test('backup - refuses a directory that is not empty, and an organism with no streams', async (t) => {
  const a = await nats(t);
  const id = uniqueId('bn');
  await populate(a.nc, id);
  const dir = tempDir(t);
  writeFileSync(join(dir, 'something'), 'x');
  t.is(await codeOf(backupOrganism(a.nc, id, dir)), 'BACKUP_ERR_DIR');
  t.is(await codeOf(backupOrganism(a.nc, uniqueId('none'), join(tempDir(t), 'b'))), 'BACKUP_ERR_SNAPSHOT');
  const { dir: done } = await backupOf(t, a.nc, id);
  t.is(await codeOf(backupOrganism(a.nc, id, done)), 'BACKUP_ERR_DIR', 'a backup is never written over');
});

// Serial: grow spawns cells, which want the machine to themselves more than the other tests do.
test.serial('cli - backup a grown organism, restore refused while it lives, restored into another nats-server', async (t) => {
  const g = await grow(t);
  const out = join(tempDir(t), 'backup');
  const r = await cliAsync(['backup', '--out', out, '--state-dir', g.stateDir]);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stderr, new RegExp(`backup KV_org_${g.record.id}_lineage: [\\d.]+ (B|KiB)`));
  t.regex(r.stderr, new RegExp(`backup of organism ${g.record.id}: \\d+ streams and buckets`));
  const manifest = parseManifest(readFileSync(join(out, MANIFEST_FILE), 'utf8'), g.record.id);
  const lineage = manifest.streams.find((s) => s.name === `KV_org_${g.record.id}_lineage`)!;
  t.true(lineage.state.messages >= 1, 'the cells have certificates in the lineage bucket');

  const refused = await cliAsync(['restore', '--from', out, '--state-dir', g.stateDir]);
  t.is(refused.status, 1);
  t.regex(refused.stderr, /error BACKUP_ERR_ALIVE: organism .* is alive: its grow runs/);

  const b = await nats(t);
  const restored = await cliAsync(['restore', '--from', out, '--nats', b.url]);
  t.is(restored.status, 0, restored.stderr);
  t.regex(restored.stderr, new RegExp(`organism ${g.record.id} restored`));
  const jsm = await jetstreamManager(b.nc);
  for (const s of manifest.streams) {
    const info = await jsm.streams.info(s.name);
    if (s.file !== null) t.is(info.state.last_seq, s.state.last_seq, s.name);
  }
  const again = await cliAsync(['restore', '--from', out, '--nats', b.url]);
  t.regex(again.stderr, /error BACKUP_ERR_EXISTS/);
  t.regex((await cliAsync(['backup', '--state-dir', g.stateDir])).stderr, /error CLI_ERR_USAGE: backup needs --out/);
});

// ---------------------------------------------------------------------------------------
// The manifest parser: valid manifests round-trip, anything else is BACKUP_ERR_MANIFEST.

const ID = fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,31}$/);

/** A stream entry of the manifest, named once the organism id is known (built once: `chain` would rebuild the regexps per run). */
const rawEntry = fc.record({
  kv: fc.boolean(),
  base: fc.stringMatching(/^[a-z0-9-]{1,20}$/),
  memory: fc.boolean(),
  first: fc.integer({ min: 0, max: 1e9 }),
  span: fc.integer({ min: 0, max: 1e6 }),
  fill: fc.double({ min: 0, max: 1, noNaN: true }),
  bytes: fc.nat(),
  size: fc.nat(),
  sha: fc.uint8Array({ minLength: 32, maxLength: 32 }),
  subjects: fc.option(fc.array(fc.string({ minLength: 1 }), { maxLength: 3 }), { nil: undefined }),
  extra: fc.dictionary(fc.constantFrom('max_age', 'max_bytes', 'retention', 'num_replicas'), fc.jsonValue({ maxDepth: 1 })),
});

function streamEntry(id: string, r: typeof rawEntry extends fc.Arbitrary<infer T> ? T : never): ManifestStream {
  const name = `${r.kv ? 'KV_' : ''}org_${id}_${r.base}`;
  const messages = Math.floor(r.fill * (r.span + 1));
  return {
    name,
    config: { ...r.extra, name, storage: r.memory ? 'memory' : 'file', ...(r.subjects ? { subjects: r.subjects } : {}) },
    state: { messages, bytes: r.bytes, first_seq: r.first, last_seq: r.first + r.span },
    file: r.memory ? null : `${name}.snapshot`,
    size: r.memory ? 0 : r.size,
    sha256: r.memory ? null : Buffer.from(r.sha).toString('hex'),
  };
}

const manifestArb: fc.Arbitrary<Manifest> = fc
  .record({
    id: ID,
    created: fc.date({ min: new Date('2000-01-01'), max: new Date('2999-12-31'), noInvalidDate: true }).map((d) => d.toISOString()),
    server: fc.string({ maxLength: 64 }),
    streams: fc.uniqueArray(rawEntry, { minLength: 1, maxLength: 5, selector: (r) => `${r.kv}${r.base}` }),
  })
  .map((r) => ({ format: 'cellular-backup', version: 1, organism: r.id, created: r.created, server: r.server, streams: r.streams.map((e) => streamEntry(r.id, e)) }));

function manifestCode(text: string, organism?: string): string {
  try {
    parseManifest(text, organism);
    return 'parsed';
  } catch (e) {
    return e instanceof CellularError ? e.code : `threw ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`;
  }
}

test('manifest - valid manifests round-trip through JSON', (t) => {
  t.notThrows(() =>
    fc.assert(
      fc.property(manifestArb, (m) => {
        const back = parseManifest(JSON.stringify(m, null, 2), m.organism);
        if (JSON.stringify(back) !== JSON.stringify(m)) throw new Error(`changed: ${JSON.stringify(back)}`);
      }),
      { numRuns: 300 },
    ),
  );
});

test('manifest - any text or JSON value either parses or is BACKUP_ERR_MANIFEST, never another error', (t) => {
  t.notThrows(() =>
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.jsonValue().map((v) => JSON.stringify(v)), fc.anything().map((v) => JSON.stringify(v) ?? 'undefined')), (text) => {
        const code = manifestCode(text);
        if (code !== 'BACKUP_ERR_MANIFEST' && code !== 'parsed') throw new Error(code);
      }),
      { numRuns: 500 },
    ),
  );
});

/**
 * Values no checked field accepts in place of the one it has: counts are non-negative
 * integers, names, files and hashes have exact forms, organism must be the expected id
 * (`server`, a free string, is only ever deleted).
 */
const WRONG: readonly unknown[] = [null, -1, 1.5, 'x', '', [], {}, true, false, '1'];
const wrong = (current: unknown, index: number) => {
  const pool = WRONG.filter((v) => JSON.stringify(v) !== JSON.stringify(current));
  return structuredClone(pool[index % pool.length]);
};

test('manifest - one wrong, missing or unknown field anywhere is BACKUP_ERR_MANIFEST', (t) => {
  type Mutation = { where: 'top' | 'stream' | 'state' | 'config'; key: string; op: 'delete' | 'set' | 'add'; value: unknown; index: number };
  const mutation: fc.Arbitrary<Mutation> = fc.oneof(
    fc.record({ where: fc.constant('top' as const), key: fc.constantFrom('format', 'version', 'organism', 'created', 'streams'), op: fc.constantFrom('delete' as const, 'set' as const), value: fc.anything({ maxDepth: 2 }), index: fc.nat() }),
    fc.record({ where: fc.constant('top' as const), key: fc.constant('server'), op: fc.constant('delete' as const), value: fc.constant(null), index: fc.nat() }),
    fc.record({ where: fc.constant('stream' as const), key: fc.constantFrom('name', 'config', 'state', 'file', 'size', 'sha256'), op: fc.constantFrom('delete' as const, 'set' as const), value: fc.anything({ maxDepth: 2 }), index: fc.nat() }),
    fc.record({ where: fc.constant('state' as const), key: fc.constantFrom('messages', 'bytes', 'first_seq', 'last_seq'), op: fc.constantFrom('delete' as const, 'set' as const), value: fc.anything({ maxDepth: 2 }), index: fc.nat() }),
    fc.record({ where: fc.constant('config' as const), key: fc.constantFrom('name', 'storage'), op: fc.constantFrom('delete' as const, 'set' as const), value: fc.anything({ maxDepth: 2 }), index: fc.nat() }),
    fc.record({ where: fc.constantFrom('top' as const, 'stream' as const, 'state' as const), key: fc.string({ minLength: 1 }).filter((k) => k !== '__proto__'), op: fc.constant('add' as const), value: fc.anything({ maxDepth: 2 }), index: fc.nat() }),
  );
  t.notThrows(() =>
    fc.assert(
      fc.property(manifestArb, mutation, fc.context(), (m, mu, ctx) => {
        const copy = structuredClone(m) as unknown as Record<string, unknown>;
        const stream = (copy.streams as Record<string, unknown>[])[mu.index % m.streams.length]!;
        const target = mu.where === 'top' ? copy : mu.where === 'stream' ? stream : (stream[mu.where] as Record<string, unknown>);
        const current = target[mu.key];
        if (mu.op === 'add' && Object.hasOwn(target, mu.key)) return; // not an unknown field
        if (mu.op === 'set') {
          // The memory/file switch of a config is wrong on its own: file and sha256 no longer fit.
          target[mu.key] = mu.where === 'config' && mu.key === 'storage' && current === 'file' ? 'memory' : wrong(current, mu.index);
        } else if (mu.op === 'delete') delete target[mu.key];
        else target[mu.key] = mu.value ?? null;
        ctx.log(JSON.stringify(mu));
        const code = manifestCode(JSON.stringify(copy), m.organism);
        if (code !== 'BACKUP_ERR_MANIFEST') throw new Error(`${code} for ${JSON.stringify(mu)}`);
      }),
      { numRuns: 800 },
    ),
  );
});

test('manifest - a backup of another organism, duplicate streams or inconsistent states are refused', (t) => {
  const m = fc.sample(manifestArb, { numRuns: 1, seed: 7 })[0]!;
  t.is(manifestCode(JSON.stringify(m), m.organism), 'parsed');
  t.is(manifestCode(JSON.stringify(m), `${m.organism.slice(0, 30)}-x`), 'BACKUP_ERR_MANIFEST');
  t.is(manifestCode(JSON.stringify({ ...m, streams: [...m.streams, m.streams[0]] })), 'BACKUP_ERR_MANIFEST');
  const s = m.streams[0]!;
  t.is(manifestCode(JSON.stringify({ ...m, streams: [{ ...s, state: { messages: 5, bytes: 1, first_seq: 10, last_seq: 11 } }] })), 'BACKUP_ERR_MANIFEST');
  t.is(manifestCode(JSON.stringify({ ...m, streams: [{ ...s, name: 'org_other_x', config: { ...s.config, name: 'org_other_x' } }] })), 'BACKUP_ERR_MANIFEST');
  t.is(manifestCode(JSON.stringify({ ...m, streams: [{ ...s, file: '../../etc/passwd' }] })), 'BACKUP_ERR_MANIFEST');
  t.is(manifestCode(JSON.stringify({ ...m, version: 2 })), 'BACKUP_ERR_MANIFEST');
  t.is(manifestCode('{"__proto__": {"format": "cellular-backup"}}'), 'BACKUP_ERR_MANIFEST');
});
