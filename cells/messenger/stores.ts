/**
 * The messenger's JetStream state, created idempotently at every grow beside the organism's
 * own: accounts, the public-key directory, sessions (bucket TTL = session lifetime), login
 * rate-limit windows (bucket TTL = the window), delivery cursors, contact lists, presence
 * (in memory), and the messages stream
 * (one subject per recipient inbox, file storage, deduplicated by message id). Cells bind
 * to them with `openMessengerStores`, never create them.
 */
import { jetstreamManager, DiscardPolicy, RetentionPolicy, StorageType, type StreamConfig } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { tuneStream } from '../../organism/kernel/cluster.ts';
import { CellularError } from '../../organism/wire/errors.ts';
import type { MessengerGene } from '../../organism/kernel/genome/index.ts';
import type { Namespace } from '../../organism/kernel/namespace.ts';
import { MessengerSubjects } from './subjects.ts';

export const ACCOUNTS_BUCKET = 'accounts';
export const DIRECTORY_BUCKET = 'directory';
export const SESSIONS_BUCKET = 'sessions';
export const RATE_BUCKET = 'ratelimit';
export const CURSORS_BUCKET = 'cursors';
export const CONTACTS_BUCKET = 'contacts';
export const PRESENCE_BUCKET = 'presence';
export const MESSAGES_STREAM = 'messages';

export interface MessengerStores {
  accounts: KV;
  directory: KV;
  sessions: KV;
  rate: KV;
  cursors: KV;
  /** Each user's contact list: who may see the user's presence. */
  contacts: KV;
  /** Who is online where: key `u.<user>.<receiver cell>`, the count of that user's sockets there. */
  presence: KV;
  /** The messages stream's name. */
  messages: string;
}

const ms = (n: number) => n * 1e6; // JetStream durations are nanoseconds

/** The messages stream as the genome wants it. */
export function messagesStreamConfig(ns: Namespace, gene: MessengerGene, replicas: number): Partial<StreamConfig> & { name: string } {
  return {
    name: ns.stream(MESSAGES_STREAM),
    subjects: [new MessengerSubjects(ns).inboxes],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    // Quotas refuse new messages instead of dropping stored ones (nothing acknowledged is lost):
    // one inbox holds at most inboxMaxMessages, the stream at most storeMaxBytes (below the disk
    // every bucket shares), and age alone frees room.
    discard: DiscardPolicy.New,
    discard_new_per_subject: true,
    max_msgs_per_subject: gene.inboxMaxMessages,
    // 0: no cap of our own (JetStream's max_file_store, 75 % of the disk by default, stands).
    max_bytes: gene.storeMaxBytes === 0 ? -1 : gene.storeMaxBytes,
    max_age: ms(gene.messageRetentionMs),
    duplicate_window: ms(gene.dedupeWindowMs),
    // A body plus its headers; anything larger was refused at the receiver already.
    max_msg_size: gene.maxBodyBytes + 4096,
    num_replicas: replicas,
    allow_direct: true,
  };
}

/** Creates (or updates) every messenger stream and bucket; safe to run on every grow. */
export async function ensureMessengerStores(nc: NatsConnection, ns: Namespace, gene: MessengerGene, replicas = 1): Promise<MessengerStores> {
  try {
    const jsm = await jetstreamManager(nc);
    const stream = messagesStreamConfig(ns, gene, replicas);
    try {
      const info = await jsm.streams.info(stream.name);
      // Never fewer replicas than it has (a member down at this grow is not a smaller cluster).
      await jsm.streams.update(stream.name, { ...stream, num_replicas: Math.max(replicas, info.config.num_replicas) });
    } catch {
      await jsm.streams.add(stream);
    }
    const kvm = new Kvm(nc);
    // Replicated, reads go to the leader only: a replica just back from a partition must not answer
    // "no such session" for one made a moment ago (organism/kernel/cluster.ts tuneStream).
    const file = { replicas, storage: StorageType.File, allow_direct: replicas === 1 } as const;
    const stores = {
      accounts: await kvm.create(ns.bucket(ACCOUNTS_BUCKET), { ...file, history: 1 }),
      directory: await kvm.create(ns.bucket(DIRECTORY_BUCKET), { ...file, history: 1 }),
      sessions: await kvm.create(ns.bucket(SESSIONS_BUCKET), { ...file, history: 1, ttl: gene.sessionTtlMs }),
      rate: await kvm.create(ns.bucket(RATE_BUCKET), { ...file, history: 1, ttl: gene.loginWindowMs }),
      cursors: await kvm.create(ns.bucket(CURSORS_BUCKET), { ...file, history: 1 }),
      contacts: await kvm.create(ns.bucket(CONTACTS_BUCKET), { ...file, history: 1 }),
      // Presence is soft state: memory is enough, and a broker restart starts everyone offline.
      presence: await kvm.create(ns.bucket(PRESENCE_BUCKET), { replicas, storage: StorageType.Memory, history: 1 }),
      messages: stream.name,
    };
    // Buckets made by an earlier grow (a smaller cluster, older settings) keep theirs on create(): tune them.
    for (const b of [ACCOUNTS_BUCKET, DIRECTORY_BUCKET, SESSIONS_BUCKET, RATE_BUCKET, CURSORS_BUCKET, CONTACTS_BUCKET]) await tuneStream(jsm, `KV_${ns.bucket(b)}`, replicas, replicas > 1);
    await tuneStream(jsm, `KV_${ns.bucket(PRESENCE_BUCKET)}`, replicas, false); // soft state: any replica will do
    return stores;
  } catch (cause) {
    throw new CellularError('STORE_ERR_SETUP', `cannot create the messenger's streams and buckets: ${(cause as Error).message}`, { cause });
  }
}

/** Binds to the messenger's stores (cells); they exist once grow has run. */
export async function openMessengerStores(nc: NatsConnection, ns: Namespace): Promise<MessengerStores> {
  const kvm = new Kvm(nc);
  return {
    accounts: await kvm.open(ns.bucket(ACCOUNTS_BUCKET)),
    directory: await kvm.open(ns.bucket(DIRECTORY_BUCKET)),
    sessions: await kvm.open(ns.bucket(SESSIONS_BUCKET)),
    rate: await kvm.open(ns.bucket(RATE_BUCKET)),
    cursors: await kvm.open(ns.bucket(CURSORS_BUCKET)),
    contacts: await kvm.open(ns.bucket(CONTACTS_BUCKET)),
    presence: await kvm.open(ns.bucket(PRESENCE_BUCKET)),
    messages: ns.stream(MESSAGES_STREAM),
  };
}
