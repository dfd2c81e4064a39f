/**
 * What each process may do on the broker: the publish and subscribe permissions written
 * into its credential (organism/grow/mint.ts), enforced by nats-server. One table per
 * role, documented in docs/security.md. A KV bucket is a stream (`KV_<bucket>`) reached
 * through the JetStream API subjects; reading it (get, watch, keys) and writing it (a
 * publish on `$KV.<bucket>.<key>`) are granted separately, per bucket.
 *
 * Every process subscribes only to its own reply inbox (`_INBOX.<name>.>`, the connection's
 * inboxPrefix), so no process reads another's replies. Most answer requests through NATS
 * response permissions (a reply allowed only to a request it received); receivers and the
 * dashboard, which consume streams, through `_INBOX.>` (see permissionsFor).
 */
import type { Namespace } from './namespace.ts';
import { inboxPrefix } from './access.ts';
import { LINEAGE_BUCKET, RECORDER_STREAM } from './stores.ts';
import { HOMEOSTASIS_BUCKET } from './homeostasis-record.ts';

export interface BrokerPermissions {
  pub: { allow: string[]; deny?: string[] };
  sub: { allow: string[]; deny?: string[] };
  /** Replies to requests received: how many per request, and for how long (ns). */
  resp?: { max: number; ttl: number };
}

export type BrokerRole =
  /** A cell of `tissue` (its own id scopes its hormones, verbs and inbox). */
  | { kind: 'cell'; tissue: string; id: string }
  /** grow: the root's own process on a host (it holds the root key and may do anything in the organism). */
  | { kind: 'grow'; name: string }
  /** A read-only observer (`cellular census`, `cellular nginx`): hormones, lineage, census. */
  | { kind: 'observer'; name: string };

/** Names the bucket and stream names the messenger uses (cells/messenger/stores.ts). */
const MESSAGES_STREAM = 'messages';
const B = { accounts: 'accounts', directory: 'directory', sessions: 'sessions', ratelimit: 'ratelimit', cursors: 'cursors', contacts: 'contacts', presence: 'presence', revoked: 'revoked' } as const;

export { inboxPrefix };

/** Reading a stream: info, get by sequence or subject, ordered consumers and their flow control. */
function streamRead(stream: string): string[] {
  return [
    `$JS.API.STREAM.INFO.${stream}`,
    `$JS.API.STREAM.MSG.GET.${stream}`,
    `$JS.API.DIRECT.GET.${stream}`,
    `$JS.API.DIRECT.GET.${stream}.>`,
    `$JS.API.CONSUMER.CREATE.${stream}`,
    `$JS.API.CONSUMER.CREATE.${stream}.>`,
    `$JS.API.CONSUMER.DELETE.${stream}.>`,
    `$JS.API.CONSUMER.INFO.${stream}.>`,
    `$JS.API.CONSUMER.MSG.NEXT.${stream}.>`,
    `$JS.FC.${stream}.>`,
  ];
}

function kvRead(ns: Namespace, bucket: string): string[] {
  return streamRead(`KV_${ns.bucket(bucket)}`);
}

function kvWrite(ns: Namespace, bucket: string): string[] {
  return [...kvRead(ns, bucket), `$KV.${ns.bucket(bucket)}.>`];
}

/** What every cell needs, whatever its tissue. */
function cellBase(ns: Namespace, tissue: string, id: string): BrokerPermissions {
  const p = ns.prefix;
  return {
    pub: {
      allow: [
        `${p}.hormone.*.${id}`, // its own hormones only: the broker names who flooded
        `${p}.cell.*.differentiate`, // recruiting a stem cell
        `${p}.place.*`, // asking a host's grow to make a cell there
        ns.mint, // a child's or a new tissue's credential
        ns.digestWhole, // a newborn asks every grow for its whole host, answered to its inbox alone
        '$JS.API.INFO',
        ...kvRead(ns, LINEAGE_BUCKET), // read only: the mint records children's certificates
        ...kvWrite(ns, HOMEOSTASIS_BUCKET),
      ],
    },
    sub: {
      allow: [
        ns.hormones,
        `${p}.cell.${id}.>`,
        `${p}.cells.>`,
        ns.census,
        `${p}.tissue.${tissue}.>`,
        `${inboxPrefix(id)}.>`,
      ],
    },
    resp: { max: 1, ttl: 60_000_000_000 },
  };
}

/** What a tissue adds to the base (tissues not named here get the base only). */
function tissueExtra(ns: Namespace, tissue: string): { pub: string[]; sub: string[] } {
  const p = ns.prefix;
  const messages = ns.stream(MESSAGES_STREAM);
  switch (tissue) {
    case 'receiver':
      return {
        pub: [
          `${p}.tissue.worker.*`,
          `${p}.user.>`,
          `${p}.inbox.*`,
          ...streamRead(messages),
          `$JS.API.STREAM.MSG.DELETE.${messages}`,
          ...kvRead(ns, B.accounts),
          ...kvWrite(ns, B.cursors),
          ...kvWrite(ns, B.presence),
          ...kvWrite(ns, B.contacts),
        ],
        sub: [`${p}.user.>`],
      };
    case 'worker':
      return {
        pub: [
          `$JS.API.STREAM.INFO.${messages}`,
          `$JS.API.STREAM.PURGE.${messages}`,
          ...kvWrite(ns, B.accounts),
          ...kvWrite(ns, B.directory),
          ...kvWrite(ns, B.sessions),
          ...kvWrite(ns, B.ratelimit),
          ...kvWrite(ns, B.cursors),
          ...kvWrite(ns, B.contacts),
        ],
        sub: [],
      };
    case 'dashboard':
      return {
        pub: [`${p}.cell.*.stats`, ns.operator, ns.recorder('frame'), ns.recorder('mark'), ...streamRead(ns.stream(RECORDER_STREAM))],
        sub: [ns.recorder('control')],
      };
    default:
      return { pub: [], sub: [] };
  }
}

/** The permissions of `role` in organism `ns`. */
export function permissionsFor(ns: Namespace, role: BrokerRole): BrokerPermissions {
  switch (role.kind) {
    case 'cell': {
      const base = cellBase(ns, role.tissue, role.id);
      const extra = tissueExtra(ns, role.tissue);
      // nats-server 2.9 keeps every reply subject a client with response permissions receives
      // and prunes that map by scanning it: a receiver (every delivered JetStream message has
      // one) paid ~0.8 ms per message, 4× its whole cost (docs/benchmarks.md). Tissues that
      // consume streams reply through `_INBOX.>` instead: a reply subject is unguessable, and
      // only who may receive a request ever sees one.
      const streaming = role.tissue === 'receiver' || role.tissue === 'dashboard';
      return { pub: { allow: [...base.pub.allow, ...extra.pub, ...(streaming ? ['_INBOX.>'] : [])] }, sub: { allow: [...base.sub.allow, ...extra.sub] }, ...(base.resp && !streaming ? { resp: base.resp } : {}) };
    }
    case 'grow':
      // grow holds the root key: it could sign any certificate, so the broker need not hold it back.
      return {
        // Replies through `_INBOX.>`, not response permissions (whose record nats-server scans:
        // see the cell case), since grow's connection also backs up and consumes streams.
        pub: { allow: [`${ns.prefix}.>`, '$JS.API.>', '$JS.FC.>', '$JS.ACK.>', '$JS.SNAPSHOT.>', '$KV.>', '_INBOX.>'] },
        sub: { allow: [`${ns.prefix}.>`, `${inboxPrefix(role.name)}.>`] },
      };
    case 'observer':
      return {
        pub: { allow: [ns.census, ns.digestAsk, ns.digestWhole, '$JS.API.INFO', ...kvRead(ns, LINEAGE_BUCKET)] },
        sub: { allow: [ns.hormones, `${inboxPrefix(role.name)}.>`] },
      };
  }
}

/** The roles `cellular creds --tissue` knows besides the genome's tissues. */
export const PROCESS_ROLES = ['grow', 'observer'] as const;

