/**
 * The chat session in the browser: the user's identity keys, the contacts' pinned public
 * keys, conversations (1:1 and groups), and the two halves of end-to-end encryption —
 * seal every copy before `send.group`, verify and open every `deliver` before it is shown.
 * The server only ever holds sealed blobs.
 *
 * Every message goes out as `send.group` with a copy per recipient plus one to ourselves
 * (so our other browsers, and a later login, see what we sent), from an outbox that
 * resends with the same message id after a failover until the server acknowledges it.
 * Received copies are handled one at a time, in stream order, then acknowledged.
 */
import { USER_NAME, type ServerFrame } from '../../organism/wire/frames.ts';
import { generateIdentity, keyId, open, peekSenderKeyId, safetyNumber, seal, type Header, type Identity } from '../crypto/envelope.ts';
import { formatRecoveryKey, newRecoveryKey, parseRecoveryKey } from '../crypto/recovery-key.ts';
import { signRoster, verifyRoster, type SignedRoster } from '../crypto/group-roster.ts';
import { logIn, openStoredBackup, registerAccount } from './account.ts';
import type { Connection } from './connection.ts';
import { decodeContent, encodeContent } from './content.ts';
import { ClientError, describeError, errorCode } from './errors.ts';
import { byName, directGroupId, newId } from './ids.ts';
import { loadIdentity, saveIdentity } from './key-store.ts';
import { rememberSeen, seenBefore, trimSeen } from './seen.ts';
import { loadProfile, samePin, saveProfile, type Group, type PinnedKey, type Profile } from './profile.ts';

type Delivered = Extract<ServerFrame, { t: 'deliver' }>;

export interface ChatMessage {
  msg: string;
  from: string;
  text: string;
  /** When the sender sealed it (its header), ms. */
  at: number;
  /** Position in the conversation: our copy's stream sequence, or above all of them while unsent. */
  order: number;
  mine: boolean;
  /** Our own copy's sequence (received, or our self-copy), for delete for me. */
  seq?: number;
  status: 'sending' | 'sent' | 'failed' | 'received';
  problem?: string;
  readBy: Set<string>;
  unread: boolean;
  /** Deleted for everyone by its sender: shown as a tombstone. */
  deleted: boolean;
}

export interface Conversation {
  /** `u:<user>` or `g:<group id>`. */
  id: string;
  kind: 'direct' | 'group';
  title: string;
  /** Everyone in it, us included, sorted. */
  members: string[];
  messages: ChatMessage[];
  unread: number;
}

interface Outgoing {
  msg: string;
  group: string;
  copies: { to: string; body: Uint8Array }[];
  message: ChatMessage;
  inflight: boolean;
}

/** A contact whose published key no longer matches the one we trusted. */
export interface KeyChange {
  user: string;
  pinned: PinnedKey;
  published: PinnedKey;
  /** Messages signed with the new key, held until the person accepts it. */
  held: number;
}

const HISTORY_PAGE = 100;
const HISTORY_PAGES_MAX = 100;
const ACK_EVERY = 64;
const ACK_DELAY_MS = 20;
const RECHECK_KEYS_MS = 60_000;
const RECEIPT_DELAY_MS = 250;
/** Above every real stream sequence: where unsent messages sort. */
const UNSENT = 2 ** 53 - 2 ** 40;


/**
 * Whether this browser has seen `user` log in with OPAQUE: then a server that says the
 * account predates it (AUTH_ERR_LEGACY, asking for the password) is lying, and is refused
 * without asking the person again.
 */
const OPAQUE_KNOWN = (user: string) => `cellular.opaque.${user}`;
function opaqueKnown(user: string): boolean {
  try {
    return globalThis.localStorage?.getItem(OPAQUE_KNOWN(user)) === '1';
  } catch {
    return false;
  }
}
/** This browser's device ticket for a user: shown at the next login so attackers elsewhere cannot lock it out. */
const DEVICE = (user: string) => `cellular.device.${user}`;
function deviceTicket(user: string): string | undefined {
  try {
    return globalThis.localStorage?.getItem(DEVICE(user)) ?? undefined;
  } catch {
    return undefined;
  }
}
function keepDevice(user: string, ticket: string | undefined): void {
  try {
    if (ticket) globalThis.localStorage?.setItem(DEVICE(user), ticket);
  } catch {
    // storage off: the next login simply shows no ticket
  }
}
function knowOpaque(user: string): void {
  try {
    globalThis.localStorage?.setItem(OPAQUE_KNOWN(user), '1');
  } catch {
    // storage refused (a private window's quota): the person is asked again, nothing worse
  }
}

function pinOf(k: { x25519: Uint8Array; ed25519: Uint8Array }): PinnedKey {
  return { x25519: new Uint8Array(k.x25519), ed25519: new Uint8Array(k.ed25519), id: keyId(k.ed25519) };
}

export class Chat {
  readonly #conn: Connection;
  #user: string | null = null;
  #identity: Identity | null = null;
  #profile: Profile | null = null;
  readonly #conversations = new Map<string, Conversation>();
  /** `${from}/${msg}` → where it is shown. */
  readonly #messages = new Map<string, { conv: Conversation; message: ChatMessage }>();
  /** Directory answers this session, and when. */
  readonly #checked = new Map<string, number>();
  readonly #changes = new Map<string, KeyChange>();
  readonly #held = new Map<string, Delivered[]>();
  readonly #presence = new Map<string, boolean>();
  readonly #outbox: Outgoing[] = [];
  #unsent = 0;
  #inbox: Promise<void> = Promise.resolve();
  /** Deliveries that come with the session, before the keys are open, wait for this. */
  #keysOpened!: () => void;
  readonly #keysOpen = new Promise<void>((resolve) => (this.#keysOpened = resolve));
  #ackSeq = 0;
  #ackGeneration = 0;
  #ackTimer: ReturnType<typeof setTimeout> | undefined;
  #sinceAck = 0;
  #historyDone = false;
  /** Where this session's keys came from: made here, this browser's store, or the backup. */
  keysFrom: 'new' | 'this browser' | 'backup' | null = null;
  /** After a registration with a recovery key: its text, for the page to show once. */
  recoveryKeyText: string | null = null;
  /** This login upgraded an account made before OPAQUE (the page tells the person once). */
  upgraded = false;
  /** Asked before the password of an old account is sent (once, to upgrade it): the page asks its person. */
  confirmLegacy: () => Promise<boolean> | boolean = () => false;
  /** Asked for the recovery key when the backup is sealed with one; null when the person gives none. */
  askRecoveryKey: () => Promise<string | null> = async () => null;
  /** Something changed: a conversation (its id), or the lists (no id). */
  onChange: (conv?: string) => void = () => undefined;
  onProblem: (text: string, code: string) => void = () => undefined;
  /** Which conversation the person is looking at: its messages are read as they come. */
  visible: string | null = null;

  constructor(conn: Connection) {
    this.#conn = conn;
    conn.onPush = (f, generation) => this.#onPush(f, generation);
  }

  /** The link is back (a new socket resumed the session): what waits goes out. */
  resumed(): void {
    this.#pump();
  }

  get user(): string | null {
    return this.#user;
  }

  get historyLoaded(): boolean {
    return this.#historyDone;
  }

  conversations(): Conversation[] {
    const last = (c: Conversation) => c.messages.at(-1)?.order ?? 0;
    return [...this.#conversations.values()].sort((a, b) => last(b) - last(a) || byName(a.title, b.title));
  }

  conversation(id: string): Conversation | undefined {
    return this.#conversations.get(id);
  }

  online(user: string): boolean | undefined {
    return this.#presence.get(user);
  }

  keyChange(user: string): KeyChange | undefined {
    return this.#changes.get(user);
  }

  /** Contacts of a conversation whose key changed (it is blocked until each is accepted). */
  blockers(conv: Conversation): KeyChange[] {
    return conv.members.flatMap((m) => this.#changes.get(m) ?? []);
  }

  // ---------------------------------------------------------------------------------------
  // Account

  /**
   * A new account (OPAQUE: the password stays here): keys made here, public halves
   * published, private halves backed up sealed under the password's export key or, with
   * `recoveryKey`, under a new recovery key, whose text `recoveryKeyText` holds for the page
   * to show once.
   */
  async register(user: string, password: string, options: { recoveryKey?: boolean } = {}): Promise<void> {
    const identity = generateIdentity();
    const recoveryKey = options.recoveryKey ? newRecoveryKey() : undefined;
    const r = await registerAccount(this.#conn, user, password, identity, recoveryKey);
    this.#conn.session = r.session.token; // a new socket resumes it
    knowOpaque(user);
    keepDevice(user, r.session.device);
    this.recoveryKeyText = recoveryKey ? formatRecoveryKey(recoveryKey) : null;
    await saveIdentity(user, identity);
    this.keysFrom = 'new';
    await this.#ready(user, identity);
  }

  /**
   * An existing account: this browser's own copy of the keys, else the server's sealed
   * backup (opened with the login's export key, or the recovery key the page asks for). An
   * account from before OPAQUE is upgraded here if the person agrees (confirmLegacy).
   */
  async login(user: string, password: string): Promise<void> {
    const local = await loadIdentity(user).catch(() => null);
    const device = deviceTicket(user);
    const r = await logIn(this.#conn, user, password, { confirmLegacy: () => this.confirmLegacy(), knownOpaque: opaqueKnown(user), ...(local ? { legacyIdentity: local } : {}), ...(device ? { device } : {}) });
    this.#conn.session = r.session.token; // a new socket resumes it
    knowOpaque(user);
    keepDevice(user, r.session.device);
    this.upgraded = r.upgraded === true;
    let identity = local;
    if (identity) {
      this.keysFrom = 'this browser';
    } else {
      identity = await openStoredBackup(this.#conn, user, r.exportKey, async () => {
        const text = await this.askRecoveryKey();
        if (text === null) return null;
        try {
          return parseRecoveryKey(text);
        } catch (e) {
          throw new ClientError('CLIENT_ERR_RECOVERY_BAD', (e as Error).message);
        }
      });
      await saveIdentity(user, identity);
      this.keysFrom = 'backup';
    }
    await this.#ready(user, identity);
  }

  async #ready(user: string, identity: Identity): Promise<void> {
    this.#profile = await loadProfile(user);
    void trimSeen(user);
    this.#user = user;
    this.#identity = identity;
    this.#keysOpened();
    for (const [id, g] of Object.entries(this.#profile.groups)) this.#ensureGroup(id, g.name, g.members, g.roster);
    for (const c of this.#profile.contacts) this.#ensureDirect(c);
    this.onChange();
    // Deliveries that came before the keys were open wait in the chain behind this.
    void this.#loadHistory();
    void this.#publishContacts();
  }

  /** Pages through everything still stored in our inbox (our own sent copies included). */
  async #loadHistory(): Promise<void> {
    let after = 0;
    try {
      for (let page = 0; page < HISTORY_PAGES_MAX; page++) {
        const h = await this.#conn.request<Extract<ServerFrame, { t: 'history' }>>({ t: 'history', after, limit: HISTORY_PAGE });
        for (const m of h.messages) this.#enqueue({ t: 'deliver', ...m }, 'history', 0);
        if (!h.more || h.messages.length === 0) break;
        after = h.messages.at(-1)!.seq;
      }
    } catch (e) {
      this.onProblem(`history: ${describeError(e)}`, errorCode(e));
    }
    await this.#inbox;
    this.#historyDone = true;
    this.onChange();
    void this.#publishContacts();
  }

  // ---------------------------------------------------------------------------------------
  // Contacts, presence, directory

  async findUsers(query: string): Promise<{ user: string; online?: boolean }[]> {
    const r = await this.#conn.request<Extract<ServerFrame, { t: 'users' }>>({ t: 'users', query, limit: 20 });
    return r.users.filter((u) => u.user !== this.#user);
  }

  /** Opens (or makes) the 1:1 conversation with `user`, who must have published keys. */
  async openDirect(user: string): Promise<Conversation> {
    if (!USER_NAME.test(user)) throw new ClientError('ACCOUNT_ERR_NOT_FOUND', `There is no user named ${JSON.stringify(user.slice(0, 40))}.`);
    if (user === this.#user) throw new ClientError('ACCOUNT_ERR_NOT_FOUND', 'That is you: pick someone else.');
    if (!this.#conversations.has(`u:${user}`)) await this.#currentKey(user);
    const conv = this.#ensureDirect(user);
    this.#addContacts([user]);
    this.onChange();
    return conv;
  }

  async createGroup(name: string, others: string[]): Promise<Conversation> {
    const me = this.#me();
    const members = [...new Set([me, ...others.map((o) => o.trim()).filter((o) => o.length > 0)])].sort(byName);
    if (name.trim().length === 0 || members.length < 2) throw new ClientError('CLIENT_ERR_GROUP');
    for (const m of members) if (m !== me) await this.#currentKey(m);
    const id = newId();
    // The membership, signed: every member's client refuses a copy from anyone not listed.
    const roster = signRoster({ v: 1, group: id, name: name.trim(), version: 1, members, by: me, at: Date.now() }, this.#identity!.ed25519.secretKey);
    const conv = this.#ensureGroup(id, name.trim(), members, roster);
    this.#addContacts(members);
    this.onChange();
    return conv;
  }

  #addContacts(users: string[]): void {
    const p = this.#profile;
    if (!p) return;
    const fresh = users.filter((u) => u !== this.#user && !p.contacts.includes(u));
    if (fresh.length === 0) return;
    p.contacts.push(...fresh);
    void saveProfile(p);
    void this.#publishContacts();
  }

  /** Our contacts are who may see our presence (and we theirs, once they list us). */
  async #publishContacts(): Promise<void> {
    const p = this.#profile;
    if (!p) return;
    await this.#conn.request({ t: 'contacts.set', users: p.contacts.slice(-1000) }).catch(() => undefined);
  }

  safetyNumber(user: string): { number: string; pending: boolean } | null {
    const me = this.#identity;
    const change = this.#changes.get(user);
    const key = change?.published ?? this.#profile?.pins[user]?.at(-1);
    if (!me || !key || !this.#user) return null;
    const mine = { user: this.#user, ed25519: me.ed25519.publicKey, x25519: me.x25519.publicKey };
    return { number: safetyNumber(mine, { user, ed25519: key.ed25519, x25519: key.x25519 }), pending: change !== undefined };
  }

  /** Whether the person marked `user`'s current identity verified (a pending key change unmarks it). */
  verified(user: string): boolean {
    return !this.#changes.has(user) && this.#profile?.pins[user]?.at(-1)?.verified === true;
  }

  /** The person compared safety numbers with `user` and they matched. */
  markVerified(user: string, verified = true): void {
    const pin = this.#profile?.pins[user]?.at(-1);
    if (!pin || this.#changes.has(user)) return;
    pin.verified = verified;
    void saveProfile(this.#profile!);
    this.onChange();
  }

  /** The person accepts a contact's new key: it is pinned (unverified), and what it signed is shown. */
  acceptKey(user: string): void {
    const change = this.#changes.get(user);
    const p = this.#profile;
    if (!change || !p) return;
    p.pins[user] = [...(p.pins[user] ?? []), { ...change.published, verified: false }];
    void saveProfile(p);
    this.#changes.delete(user);
    for (const f of this.#held.get(user)?.splice(0) ?? []) this.#enqueue(f, 'history', 0);
    this.#held.delete(user);
    this.onChange();
  }

  /** The directory's keys for `user` (asked again at most every RECHECK_KEYS_MS), or null. */
  async #published(user: string, fresh = false): Promise<PinnedKey | null> {
    const checked = this.#checked.get(user);
    const pins = this.#profile?.pins[user];
    if (!fresh && checked !== undefined && Date.now() - checked < RECHECK_KEYS_MS && pins && !this.#changes.has(user)) return pins.at(-1)!;
    const r = await this.#conn.request<Extract<ServerFrame, { t: 'keys' }>>({ t: 'keys.get', users: [user] });
    this.#checked.set(user, Date.now());
    const k = r.keys.find((x) => x.user === user);
    return k ? pinOf(k) : null;
  }

  /**
   * The key to encrypt to `user`, checked against the directory: trusted on first use,
   * and a different published key blocks until the person accepts it.
   */
  async #currentKey(user: string): Promise<PinnedKey> {
    const p = this.#profile!;
    let published: PinnedKey | null;
    try {
      published = await this.#published(user);
    } catch (e) {
      // Offline (a failover under way): seal to the key we trust; it is checked again later.
      const pinned = p.pins[user]?.at(-1);
      if (pinned && !this.#changes.has(user)) return pinned;
      throw e;
    }
    if (!published) throw new ClientError('CLIENT_ERR_NO_KEYS', `${user} has no published keys`);
    const pins = p.pins[user];
    if (!pins || pins.length === 0) {
      p.pins[user] = [published];
      void saveProfile(p);
      return published;
    }
    // Sealed to the pinned identity; both keys must still be the published ones.
    if (samePin(pins.at(-1)!, published)) return pins.at(-1)!;
    // Any other key (either half), even one we trusted before, waits for the person's say.
    this.#noteChange(user, published);
    return this.#blocked(user);
  }

  #blocked(user: string): never {
    throw new ClientError('CLIENT_ERR_KEY_CHANGED', `${user}'s security key changed: compare safety numbers and accept it to go on`);
  }

  #noteChange(user: string, published: PinnedKey): void {
    const pinned = this.#profile!.pins[user]!.at(-1)!;
    if (samePin(pinned, published)) return;
    const noted = this.#changes.get(user)?.published;
    if (noted && samePin(noted, published)) return;
    this.#changes.set(user, { user, pinned, published, held: this.#held.get(user)?.length ?? 0 });
    this.onChange();
  }

  /** The pinned key that `id` names, learning it (first use) or noting a change; null if none. */
  async #senderKey(user: string, id: string | null): Promise<PinnedKey | 'held' | null> {
    const pins = this.#profile!.pins[user];
    const known = id === null ? undefined : pins?.find((k) => k.id === id);
    if (known) return known;
    const published = await this.#published(user, true);
    if (!published || published.id !== id) return null;
    if (!pins || pins.length === 0) {
      this.#profile!.pins[user] = [published];
      void saveProfile(this.#profile!);
      return published;
    }
    this.#noteChange(user, published);
    return 'held';
  }

  // ---------------------------------------------------------------------------------------
  // Sending

  #sending: Promise<unknown> = Promise.resolve();

  /** Seals and queues a message; sends are sealed one after another, so they keep their order. */
  send(convId: string, text: string): Promise<ChatMessage> {
    const next = this.#sending.then(() => this.#send(convId, text));
    this.#sending = next.catch(() => undefined);
    return next;
  }

  async #send(convId: string, text: string): Promise<ChatMessage> {
    const me = this.#me();
    const identity = this.#identity!;
    const conv = this.#conversations.get(convId);
    if (!conv) throw new Error(`no conversation ${convId}`);
    const blocked = this.blockers(conv);
    if (blocked.length > 0) this.#blocked(blocked[0]!.user);
    const msg = newId();
    const at = Date.now();
    const group = conv.kind === 'group' ? conv.id.slice(2) : undefined;
    const plaintext = encodeContent(conv.kind === 'group' ? { v: 1, text, name: conv.title, roster: this.#rosterFor(conv) } : { v: 1, text });
    // Writing to people makes them contacts (they may see our presence); receiving does not.
    this.#addContacts(conv.members);
    const copies: Outgoing['copies'] = [];
    for (const to of conv.members) {
      const key = to === me ? pinOf({ x25519: identity.x25519.publicKey, ed25519: identity.ed25519.publicKey }) : await this.#currentKey(to);
      const header: Header = { v: 1, from: me, to, msg, at, ...(group ? { group } : {}), members: conv.members, senderKeyId: keyId(identity.ed25519.publicKey), recipientKeyId: keyId(key.x25519) };
      copies.push({ to, body: seal({ plaintext, header, sender: identity, recipientX25519: key.x25519 }) });
    }
    const message: ChatMessage = { msg, from: me, text, at, order: UNSENT + this.#unsent++, mine: true, status: 'sending', readBy: new Set(), unread: false, deleted: false };
    this.#place(conv, message);
    this.#messages.set(`${me}/${msg}`, { conv, message });
    this.#outbox.push({ msg, group: group ?? directGroupId(conv.members[0]!, conv.members[1]!), copies, message, inflight: false });
    this.onChange(conv.id);
    this.#pump();
    return message;
  }

  /** Sends what is waiting, in order; resends after a failover with the same id and bodies. */
  #pump(): void {
    if (!this.#conn.connected) return;
    for (const o of this.#outbox) {
      if (o.inflight) continue;
      o.inflight = true;
      this.#conn.request<Extract<ServerFrame, { t: 'ack' }>>({ t: 'send.group', msg: o.msg, group: o.group, copies: o.copies }).then(
        (ack) => this.#acked(o, ack.seqs),
        (e: unknown) => {
          o.inflight = false;
          const code = errorCode(e);
          if (['CLIENT_ERR_OFFLINE', 'MESSAGE_ERR_STORE', 'TISSUE_ERR_UNAVAILABLE', 'CELL_ERR_REMOTE', 'PROTO_ERR_RATE', 'AUTH_ERR_REQUIRED'].includes(code)) {
            // It goes again when the connection is back (or in a moment if it never left).
            if (this.#conn.connected) this.#retryTimer ??= setTimeout(() => {
              this.#retryTimer = undefined;
              this.#pump();
            }, 500);
            return;
          }
          this.#outbox.splice(this.#outbox.indexOf(o), 1);
          o.message.status = 'failed';
          o.message.problem = describeError(e);
          this.onProblem(describeError(e), code);
          this.onChange(this.#messages.get(`${o.message.from}/${o.msg}`)?.conv.id);
        },
      );
    }
  }

  /** One retry for every send that failed in the same moment, not one timer each. */
  #retryTimer: ReturnType<typeof setTimeout> | undefined;

  #acked(o: Outgoing, seqs: number[]): void {
    const i = this.#outbox.indexOf(o);
    if (i >= 0) this.#outbox.splice(i, 1);
    const where = this.#messages.get(`${o.message.from}/${o.msg}`);
    o.message.status = 'sent';
    const self = o.copies.findIndex((c) => c.to === this.#user);
    const seq = seqs[self];
    if (seq !== undefined && where) {
      o.message.seq = seq;
      this.#reorder(where.conv, o.message, seq);
    }
    if (this.#profile) {
      this.#profile.sent[o.msg] = seqs;
      void saveProfile(this.#profile);
    }
    this.onChange(where?.conv.id);
  }

  // ---------------------------------------------------------------------------------------
  // Receiving

  #onPush(f: ServerFrame, generation: number): void {
    switch (f.t) {
      case 'deliver':
        return this.#enqueue(f, 'push', generation);
      case 'receipt':
        return this.#receipt(f.msg, f.by);
      case 'deleted':
        return this.#deletedBy(f.by, f.msg);
      case 'presence':
        this.#presence.set(f.user, f.online);
        // Someone coming online may have new keys: ask the directory next time.
        if (f.online) this.#checked.delete(f.user);
        return this.onChange();
      case 'error':
        return this.onProblem(describeError(f), f.code);
      default:
    }
  }

  /** One at a time, in the order they came: acks must cover only what was handled. */
  #enqueue(f: Delivered, via: 'push' | 'history', generation: number): void {
    this.#inbox = this.#inbox
      .then(async () => {
        await this.#keysOpen;
        await this.#receive(f, via);
      })
      .catch((e: unknown) => this.onProblem(describeError(e), errorCode(e)))
      .then(() => {
        if (via === 'push') this.#ack(f.seq, generation);
      });
  }

  async #receive(f: Delivered, via: 'push' | 'history'): Promise<void> {
    const me = this.#user!;
    const seen = this.#messages.get(`${f.from}/${f.msg}`);
    if (seen) {
      // Our own message coming back as our self-copy; or a copy we have shown already.
      if (seen.message.seq === undefined && f.to === me) {
        seen.message.seq = f.seq;
        void rememberSeen(me, f.from, f.msg, f.seq);
        if (seen.message.mine) this.#reorder(seen.conv, seen.message, f.seq);
      }
      return;
    }
    // Shown in an earlier session under another sequence (stored again since: a replay), or deleted by the person.
    const before = await seenBefore(me, f.from, f.msg);
    if (before && (before.deleted || before.seq !== f.seq)) return;
    const sender = f.from === me ? pinOf({ x25519: this.#identity!.x25519.publicKey, ed25519: this.#identity!.ed25519.publicKey }) : await this.#senderKey(f.from, peekSenderKeyId(f.body));
    if (sender === 'held') {
      const held = this.#held.get(f.from) ?? [];
      held.push(f);
      this.#held.set(f.from, held);
      const change = this.#changes.get(f.from);
      if (change) change.held = held.length;
      this.onChange();
      return;
    }
    if (sender === null) throw new ClientError('CLIENT_ERR_UNVERIFIED', `a message from ${f.from} did not verify against any key they published, and is not shown`);
    // Shown only if the signature holds and the header says what the server says.
    const opened = open({ sealed: f.body, recipient: this.#identity!, senderEd25519: sender.ed25519, expect: { from: f.from, to: me, msg: f.msg } });
    const h = opened.header;
    const content = decodeContent(opened.plaintext);
    const members = h.members ?? [f.from, me].sort(byName);
    let conv: Conversation;
    if (h.group !== undefined) {
      const roster = await this.#checkRoster(f.from, me, h.group, members, content.roster, sender.ed25519);
      conv = this.#ensureGroup(h.group, roster.name, roster.members, roster);
    } else {
      const other = f.from === me ? members.find((m) => m !== me) : f.from;
      if (!other || members.length !== 2) throw new ClientError('CONTENT_ERR_FORMAT', 'a 1:1 message must name two members');
      conv = this.#ensureDirect(other);
    }
    const mine = f.from === me;
    const fresh = via === 'push' && !mine;
    const message: ChatMessage = {
      msg: f.msg, from: f.from, text: content.text, at: h.at, order: f.seq, mine, seq: f.seq,
      status: mine ? 'sent' : 'received', readBy: new Set(), unread: fresh, deleted: false,
    };
    this.#place(conv, message);
    this.#messages.set(`${f.from}/${f.msg}`, { conv, message });
    void rememberSeen(me, f.from, f.msg, f.seq);
    if (message.unread) conv.unread++;
    if (this.visible === conv.id && message.unread) this.markRead(conv.id);
    this.onChange(conv.id);
  }

  #ack(seq: number, generation: number): void {
    if (generation !== this.#conn.generation) return; // that socket is gone: the new one delivers again
    if (generation !== this.#ackGeneration) {
      this.#ackGeneration = generation;
      this.#ackSeq = 0;
    }
    this.#ackSeq = Math.max(this.#ackSeq, seq);
    if (++this.#sinceAck >= ACK_EVERY) return this.#flushAck();
    this.#ackTimer ??= setTimeout(() => this.#flushAck(), ACK_DELAY_MS);
  }

  #flushAck(): void {
    clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
    this.#sinceAck = 0;
    if (this.#ackGeneration !== this.#conn.generation || this.#ackSeq === 0) return;
    // A lost ack is harmless: the messages come again and are dropped as duplicates.
    void this.#conn.request({ t: 'deliver.ack', seq: this.#ackSeq }).catch(() => undefined);
  }

  // ---------------------------------------------------------------------------------------
  // Read receipts and deletion

  /** The person sees this conversation: its unread messages are read, and their senders told. */
  markRead(convId: string): void {
    const conv = this.#conversations.get(convId);
    if (!conv || conv.unread === 0) return;
    const newest = new Map<string, ChatMessage>();
    for (const m of conv.messages) {
      if (!m.unread) continue;
      m.unread = false;
      newest.set(m.from, m);
    }
    conv.unread = 0;
    // One receipt per sender, for their newest message: it stands for everything before it.
    // Gathered for RECEIPT_DELAY_MS, so a burst read as it arrives costs one frame, not one each.
    for (const m of newest.values()) {
      // Per conversation and sender: the sender applies a receipt to their messages in that conversation.
      const key = `${conv.id}\n${m.from}`;
      const queued = this.#receipts.get(key);
      if (m.seq !== undefined && (!queued || queued.order < m.order)) this.#receipts.set(key, m);
    }
    this.#receiptTimer ??= setTimeout(() => {
      this.#receiptTimer = undefined;
      for (const m of this.#receipts.values()) void this.#conn.request({ t: 'read', msg: m.msg, from: m.from, seq: m.seq! }).catch(() => undefined);
      this.#receipts.clear();
    }, RECEIPT_DELAY_MS);
    this.onChange(conv.id);
  }

  readonly #receipts = new Map<string, ChatMessage>();
  #receiptTimer: ReturnType<typeof setTimeout> | undefined;

  #receipt(msg: string, by: string): void {
    const where = this.#messages.get(`${this.#user}/${msg}`);
    if (!where) return;
    for (const m of where.conv.messages) {
      if (m.order > where.message.order) break;
      if (m.mine) m.readBy.add(by);
    }
    this.onChange(where.conv.id);
  }

  async deleteForMe(convId: string, msg: string, from: string): Promise<void> {
    const where = this.#messages.get(`${from}/${msg}`);
    if (!where || where.conv.id !== convId) return;
    const pending = this.#outbox.findIndex((o) => o.msg === msg);
    if (pending >= 0 && !this.#outbox[pending]!.inflight) this.#outbox.splice(pending, 1);
    else if (where.message.seq !== undefined) await this.#conn.request({ t: 'delete', msg, scope: 'me', seqs: [where.message.seq] });
    where.conv.messages.splice(where.conv.messages.indexOf(where.message), 1);
    // Never shown again, whatever sequence the server gives it later.
    if (where.message.seq !== undefined) void rememberSeen(this.#me(), from, msg, where.message.seq, true);
    if (where.message.unread) where.conv.unread--;
    this.onChange(convId);
  }

  canDeleteForEveryone(m: ChatMessage): boolean {
    return m.mine && !m.deleted && this.#profile?.sent[m.msg] !== undefined;
  }

  async deleteForEveryone(convId: string, msg: string): Promise<void> {
    const seqs = this.#profile?.sent[msg];
    const where = this.#messages.get(`${this.#user}/${msg}`);
    if (!seqs || !where || where.conv.id !== convId) throw new ClientError('MESSAGE_ERR_NOT_FOUND');
    await this.#conn.request({ t: 'delete', msg, scope: 'everyone', seqs });
    this.#tombstone(where.message);
    delete this.#profile!.sent[msg];
    void saveProfile(this.#profile!);
    this.onChange(convId);
  }

  #deletedBy(by: string, msg: string): void {
    const where = this.#messages.get(`${by}/${msg}`);
    if (!where) return;
    this.#tombstone(where.message);
    this.onChange(where.conv.id);
  }

  #tombstone(m: ChatMessage): void {
    m.deleted = true;
    m.text = '';
    if (m.unread) {
      m.unread = false;
      const where = this.#messages.get(`${m.from}/${m.msg}`);
      if (where) where.conv.unread--;
    }
  }

  // ---------------------------------------------------------------------------------------

  #me(): string {
    if (!this.#user || !this.#identity) throw new ClientError('AUTH_ERR_REQUIRED');
    return this.#user;
  }

  #ensureDirect(user: string): Conversation {
    const id = `u:${user}`;
    let conv = this.#conversations.get(id);
    if (!conv) {
      conv = { id, kind: 'direct', title: user, members: [this.#user!, user].sort(byName), messages: [], unread: 0 };
      this.#conversations.set(id, conv);
    }
    return conv;
  }

  /** The group's conversation; a newer roster than the one kept replaces the membership. */
  #ensureGroup(group: string, name: string, members: string[], roster?: SignedRoster): Conversation {
    const id = `g:${group}`;
    let conv = this.#conversations.get(id);
    if (!conv) {
      conv = { id, kind: 'group', title: name, members: [...members].sort(byName), messages: [], unread: 0 };
      this.#conversations.set(id, conv);
    }
    const p = this.#profile;
    const kept = p?.groups[group];
    if (p && (!kept || (roster && (kept.roster?.version ?? 0) < roster.version))) {
      p.groups[group] = { name: roster?.name ?? name, members: roster ? roster.members : conv.members, ...(roster ? { roster } : {}) } satisfies Group;
      conv.title = p.groups[group]!.name;
      conv.members = [...p.groups[group]!.members];
      void saveProfile(p);
    }
    return conv;
  }

  /** The roster to send with a group message: the kept one (a group from before rosters cannot be written to). */
  #rosterFor(conv: Conversation): SignedRoster {
    const group = conv.id.slice(2);
    const p = this.#profile!;
    const kept = p.groups[group]?.roster;
    if (kept) return kept;
    // Signing one now would make this member its creator in the eyes of some members and not others.
    throw new ClientError('CLIENT_ERR_GROUP', 'This group was made before group memberships were signed: make a new group with the same people to go on.');
  }

  /**
   * Checks a group copy against its roster: signed by the group's creator (pinned by the
   * first roster accepted), listing the sender, us and exactly the header's members; a
   * sender dropped from a newer roster is refused even with an older one.
   */
  async #checkRoster(from: string, me: string, group: string, members: string[], roster: SignedRoster | undefined, senderKey: Uint8Array): Promise<SignedRoster> {
    const refuse = (why: string) => new ClientError('CLIENT_ERR_GROUP_UNSIGNED', `a group message from ${from} was not shown: ${why}`);
    if (!roster) throw refuse('it carries no signed membership');
    if (roster.group !== group) throw refuse('its membership is for another group');
    if (roster.members.length !== members.length || roster.members.some((m, i) => m !== members[i])) throw refuse('its header lists other members than the signed membership');
    if (!roster.members.includes(from) || !roster.members.includes(me)) throw refuse(`${from} or we are not members`);
    const keptGroup = this.#profile!.groups[group];
    const kept = keptGroup?.roster;
    // A group kept from before rosters takes the first roster only if it names the same members.
    if (keptGroup && !kept && (keptGroup.members.length !== roster.members.length || keptGroup.members.some((m, i) => m !== roster.members[i]))) throw refuse('its signed membership differs from the members this group had');
    if (kept && roster.by !== kept.by) throw refuse(`its membership is signed by ${roster.by}, not the group's creator ${kept.by}`);
    if (kept && kept.version > roster.version && !kept.members.includes(from)) throw refuse(`${from} is no longer a member`);
    const keys = roster.by === me ? [this.#identity!.ed25519.publicKey] : roster.by === from ? [senderKey] : (this.#profile!.pins[roster.by] ?? []).map((k) => k.ed25519);
    if (keys.length === 0) keys.push((await this.#currentKey(roster.by)).ed25519);
    if (!keys.some((k) => verifyRoster(roster, k))) throw refuse(`its membership is not signed by ${roster.by}`);
    return roster;
  }

  /** Inserts by order (binary search from the end: new messages are usually last). */
  #place(conv: Conversation, m: ChatMessage): void {
    const list = conv.messages;
    let i = list.length;
    while (i > 0 && list[i - 1]!.order > m.order) i--;
    list.splice(i, 0, m);
  }

  #reorder(conv: Conversation, m: ChatMessage, order: number): void {
    const i = conv.messages.indexOf(m);
    if (i >= 0) conv.messages.splice(i, 1);
    m.order = order;
    this.#place(conv, m);
  }
}
