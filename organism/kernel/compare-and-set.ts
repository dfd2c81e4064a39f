/**
 * Compare-and-set on a JetStream KV entry, the one agreement primitive the organism uses
 * (homeostasis records, verdicts, the seed claim, spawn tokens, rate counters, accounts,
 * session indexes, inbox cursors). A write names the revision it read (0: no entry, so
 * `create`); JetStream refuses it if another write landed meanwhile, with a numbered API
 * error. A conflict is told apart from every other refusal (no quorum, timeout,
 * permissions) by that number, never by the message text: a conflict means "read again",
 * anything else means "the store cannot take writes now".
 */
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import type { KV, KvEntry } from '@nats-io/kv';

/**
 * JetStream API error codes (nats-server's `errors.json`, as nats.js's `JetStreamApiCodes`)
 * the organism tells apart.
 */
export const JetStreamApi = {
  /** 10071: the expected last sequence of the subject is not the stream's (another write landed). */
  WrongLastSequence: JetStreamApiCodes.StreamWrongLastSequence,
  /** 10164: the same refusal, from servers that do not say which sequence they hold. */
  WrongLastSequenceUnknown: JetStreamApiCodes.StreamWrongLastSequenceUnknown,
  /** 10037: no message at that sequence or subject. */
  NoMessageFound: JetStreamApiCodes.NoMessageFound,
  /** 10059: the stream (a KV bucket's) does not exist. */
  StreamNotFound: JetStreamApiCodes.StreamNotFound,
} as const;

/** The JetStream API error code of `e`, or undefined if it is no JetStream API error. */
export function jetStreamApiCode(e: unknown): number | undefined {
  return e instanceof JetStreamApiError ? e.code : undefined;
}

/** A compare-and-set that lost: the key moved (or appeared) since it was read. */
export function isCasConflict(e: unknown): boolean {
  const code = jetStreamApiCode(e);
  return code === JetStreamApi.WrongLastSequence || code === JetStreamApi.WrongLastSequenceUnknown;
}

/**
 * Writes `value` at `key` if the entry is still at `revision` (0: there is none, so
 * create; a delete marker has a revision like any value). The new revision, or undefined
 * if another write landed first; any other refusal is thrown.
 */
export async function writeIfUnchanged(kv: KV, key: string, value: Uint8Array, revision: number): Promise<number | undefined> {
  try {
    return revision === 0 ? await kv.create(key, value) : await kv.update(key, value, revision);
  } catch (e) {
    if (isCasConflict(e)) return undefined;
    throw e;
  }
}

/** What a read-modify-write wants done with the entry it was shown. */
export type CasStep<T> =
  /** Write these bytes (at the revision read); `value` is what the caller gets back. */
  | { write: Uint8Array; value: T }
  /** Delete the entry (at the revision read; none: nothing to delete, so kept). */
  | { remove: T }
  /** Nothing to write (the entry already says it, or a limit says no). */
  | { keep: T };

export type CasOutcome<T> =
  | { type: 'written'; value: T; revision: number }
  | { type: 'removed'; value: T }
  | { type: 'kept'; value: T }
  /** No attempt landed; `value` is what the last attempt wanted, `error` why it did not land. */
  | { type: 'contended'; value: T | undefined; error: unknown };

export interface CasRetryOptions<T> {
  /** Read-modify-write attempts before giving up. */
  attempts: number;
  /** Pause before attempt `attempt + 1` after a lost one (0: none). @default 2–10 ms at random (writers spread apart) */
  pauseMs?: (attempt: number) => number;
  /**
   * Which failed writes are tried again. @default isCasConflict: only a conflict is news
   * worth a second read; anything else is thrown at once.
   */
  retryOn?: (e: unknown) => boolean;
  /**
   * The first attempt's step, decided from the entry as the caller last wrote it (at
   * `revision`, 0: none) instead of read: when nothing moved since, one write and no read.
   */
  first?: CasStep<T> & { revision: number };
}

const defaultPause = () => 2 + Math.random() * 8;

/**
 * Create-or-update with retries: reads `key`, asks `change` what to write given the entry
 * (null: none), and writes (or deletes) it by compare-and-set at the revision read. A
 * conflict reads again, after a short random pause, up to `attempts` times. `change` may
 * run once per attempt: it decides, and whatever else it does must bear repeating.
 */
export async function updateWithRetries<T>(kv: KV, key: string, change: (entry: KvEntry | null) => CasStep<T> | Promise<CasStep<T>>, options: CasRetryOptions<T>): Promise<CasOutcome<T>> {
  const retryOn = options.retryOn ?? isCasConflict;
  const pause = options.pauseMs ?? defaultPause;
  let last: T | undefined;
  let error: unknown;
  for (let attempt = 0; attempt < options.attempts; attempt++) {
    const ms = attempt > 0 ? pause(attempt - 1) : 0;
    if (ms > 0) await new Promise((r) => setTimeout(r, ms));
    let revision: number;
    let step: CasStep<T>;
    if (attempt === 0 && options.first) {
      revision = options.first.revision;
      step = options.first;
    } else {
      const entry = await kv.get(key);
      revision = entry?.revision ?? 0;
      step = await change(entry);
    }
    if ('keep' in step) return { type: 'kept', value: step.keep };
    if ('remove' in step && revision === 0) return { type: 'kept', value: step.remove };
    last = 'remove' in step ? step.remove : step.value;
    try {
      if ('remove' in step) {
        await kv.delete(key, { previousSeq: revision });
        return { type: 'removed', value: step.remove };
      }
      const written = revision === 0 ? await kv.create(key, step.write) : await kv.update(key, step.write, revision);
      return { type: 'written', value: step.value, revision: written };
    } catch (e) {
      if (!retryOn(e)) throw e;
      error = e;
    }
  }
  return { type: 'contended', value: last, error };
}
