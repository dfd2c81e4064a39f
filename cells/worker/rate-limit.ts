/**
 * Login rate limits, organism-wide: a fixed-window counter per key in the `ratelimit` KV
 * bucket, so every worker cell on every host counts into the same number. The bucket key is
 * `<key>.<window index>` (index = floor(now / windowMs)): a new window is a new key that
 * starts at zero, and the bucket TTL (= the window) sweeps old ones away.
 *
 * Counts are raised by compare-and-set (create for the first hit, update at the read
 * revision after that), retried on conflict, so concurrent workers never lose a count.
 * A hit over the limit writes nothing: a flood costs one read per attempt.
 */
import { createHash } from 'node:crypto';
import type { KV, KvEntry } from '@nats-io/kv';
import { codec } from '../../organism/wire/codec.ts';
import { CellularError } from '../../organism/wire/errors.ts';
import { updateWithRetries } from '../../organism/kernel/compare-and-set.ts';
import { addressKey } from '../http-guard.ts';

export interface RateHit {
  allowed: boolean;
  /** The window's count after this hit (or the count that refused it). */
  count: number;
  /** Until the window ends when refused, else 0. */
  retryAfterMs: number;
  /** The window this hit was counted in, for `release`. */
  window: number;
}

export interface RateRecord {
  v: 1;
  count: number;
}

/** Compare-and-set attempts before giving up (each conflict means another worker counted). */
const MAX_ATTEMPTS = 64;
/** What the KV accepts as a key (nats.js validateKey), minus '/' and '=' which we never need. */
const SAFE_KEY = /^[a-zA-Z0-9_-]+(\.[a-zA-Z0-9_-]+)*$/;

export function parseRateRecord(bytes: Uint8Array, key: string): RateRecord {
  let r: Record<string, unknown>;
  try {
    r = codec.unpack(bytes) as Record<string, unknown>;
  } catch (cause) {
    throw new CellularError('STORE_ERR_RECORD', `rate record ${key} is not msgpack`, { cause });
  }
  if (typeof r !== 'object' || r === null || r.v !== 1 || typeof r.count !== 'number' || !Number.isSafeInteger(r.count) || r.count < 0) {
    throw new CellularError('STORE_ERR_RECORD', `rate record ${key} rejected: malformed`);
  }
  return r as unknown as RateRecord;
}

const sha256hex = (s: string) => createHash('sha256').update(s).digest('hex');

/**
 * The rate key for an IP address. Hashed: addresses contain ':' (not KV-safe) and need not
 * sit in the bucket in clear. An IPv4-mapped IPv6 address counts as its IPv4 address, and
 * an IPv6 address as its /64, since one host usually holds a whole /64.
 */
export function ipKey(ip: string): string {
  return `ip.${sha256hex(ipBucket(ip)).slice(0, 32)}`;
}

/** What an address counts as: itself, its IPv4 form, or its IPv6 /64 (cells/http-guard.ts). */
export const ipBucket = addressKey;

/** The rate key for one username tried from one address (its /64 for IPv6). */
export function userAddressKey(user: string, ip: string): string {
  return `${userKey(user)}.a${sha256hex(ipBucket(ip)).slice(0, 24)}`;
}

/** The rate key for a username (already validated: plain lowercase, KV-safe as it is). */
export function userKey(user: string): string {
  return SAFE_KEY.test(user) ? `user.${user}` : `user.h${sha256hex(user).slice(0, 32)}`;
}

export class RateLimiter {
  readonly #kv: KV;
  readonly #windowMs: number;
  readonly #now: () => number;

  constructor(kv: KV, windowMs: number, now: () => number = Date.now) {
    if (!Number.isSafeInteger(windowMs) || windowMs <= 0) throw new RangeError(`windowMs must be a positive integer, received ${windowMs}`);
    this.#kv = kv;
    this.#windowMs = windowMs;
    this.#now = now;
  }

  #where(key: string, window?: number): { window: number; kvKey: string; retryAfterMs: number } {
    if (!SAFE_KEY.test(key) || key.length > 200) throw new RangeError(`rate key ${JSON.stringify(key)} is not KV-safe (hash it first)`);
    const now = this.#now();
    const w = window ?? Math.floor(now / this.#windowMs);
    return { window: w, kvKey: `${key}.${w}`, retryAfterMs: Math.max(0, (w + 1) * this.#windowMs - now) };
  }

  /** The window's count, from its entry (none, a delete marker or a malformed counter: 0). */
  #count(e: KvEntry | null, kvKey: string): number {
    if (!e || e.operation !== 'PUT') return 0;
    try {
      return parseRateRecord(e.value, kvKey).count;
    } catch {
      return 0; // a malformed counter is overwritten (someone with bucket access wrote it)
    }
  }

  /**
   * Adds `delta` to the window's count by compare-and-set, unless `refuse` says no first.
   * `changed: false, contended: true` after MAX_ATTEMPTS conflicts in a row.
   */
  async #change(kvKey: string, delta: number, refuse: (count: number) => boolean): Promise<{ count: number; changed: boolean; contended: boolean }> {
    const outcome = await updateWithRetries<{ count: number; next: number }>(this.#kv, kvKey, (e) => {
      const count = this.#count(e, kvKey);
      if (refuse(count)) return { keep: { count, next: count } };
      const next = Math.max(0, count + delta);
      return { write: codec.pack({ v: 1, count: next } satisfies RateRecord), value: { count, next } };
    }, {
      attempts: MAX_ATTEMPTS,
      // Another worker counted: re-read, a little apart (a busy host stretches a burst's retries).
      pauseMs: (attempt) => Math.random() * Math.min(4 * (attempt + 1), 25),
    });
    switch (outcome.type) {
      case 'written':
        return { count: outcome.value.next, changed: true, contended: false };
      case 'kept':
      case 'removed': // never asked for: a counter is only ever written
        return { count: outcome.value.count, changed: false, contended: false };
      case 'contended':
        return { count: outcome.value?.count ?? 0, changed: false, contended: true };
    }
  }

  /**
   * Counts one attempt against `limit` per window; over the limit it is refused and not
   * counted. A counter so contended that no write lands in MAX_ATTEMPTS tries is itself a
   * flood: the attempt is refused (fail closed) and may retry in a second.
   */
  async hit(key: string, limit: number): Promise<RateHit> {
    const where = this.#where(key);
    const { count, changed, contended } = await this.#change(where.kvKey, 1, (c) => c >= limit);
    if (changed) return { allowed: true, count, retryAfterMs: 0, window: where.window };
    return { allowed: false, count, retryAfterMs: contended ? Math.min(1_000, where.retryAfterMs) : where.retryAfterMs, window: where.window };
  }

  /**
   * Gives back one hit of `window` (a login that turned out right: only failures count per
   * user, but the slot is taken before the password is checked so concurrent guesses cannot
   * all slip under the limit). A window that has passed is left alone; so is a counter too
   * contended to write (the slot then stays counted, erring on the safe side).
   */
  async release(key: string, window: number): Promise<void> {
    const where = this.#where(key, window);
    await this.#change(where.kvKey, -1, (c) => c <= 0);
  }

  /** The current window's count, without counting. */
  async peek(key: string): Promise<{ count: number; retryAfterMs: number }> {
    const where = this.#where(key);
    return { count: this.#count(await this.#kv.get(where.kvKey), where.kvKey), retryAfterMs: where.retryAfterMs };
  }

  /** Forgets the current window's count. */
  async reset(key: string): Promise<void> {
    await this.#kv.delete(this.#where(key).kvKey);
  }
}
