/**
 * The record of a guilty verdict in the homeostasis bucket (docs/immune.md, "Toxin"): the
 * first writer's create stands, and a side without a quorum cannot write it. One piece for
 * every tally that records one: a cell's (cells/cell.ts) and the synthetic cells' of a
 * simulation (simulations/synthetic-immune.ts), so both write the same key.
 */
import { createHash } from 'node:crypto';
import type { KV } from '@nats-io/kv';
import { whileForming } from '../../organism/kernel/cluster.ts';
import { isCasConflict } from '../../organism/kernel/compare-and-set.ts';
import { pack } from '../../organism/kernel/reply.ts';

/** Vote deadlines a verdict's write is tried for. */
const VERDICT_COMMIT_DEADLINES = 2;

/** The verdict's key: one per accusation. */
export function verdictKey(accusation: string): string {
  return `verdict.${createHash('sha256').update(accusation).digest('hex').slice(0, 32)}`;
}

/**
 * Writes the verdict: 'written' by this call, 'found' when another writer's (or an earlier
 * attempt's) record stands, undefined when it could not be recorded (no quorum, the window over).
 */
export async function recordVerdict(kv: KV, v: { accusation: string; accused: string; by: string }, voteDeadlineMs: number): Promise<'written' | 'found' | undefined> {
  try {
    // A timeout is tried again for a while: every cell commits each verdict at once, and on a
    // saturated store one attempt timed out for the accuser itself, whose verdict then never
    // went out (seen at 100 cells). An attempt that did land makes the next one a conflict.
    // A minority (no quorum) still fails once the window is over.
    await whileForming(() => kv.create(verdictKey(v.accusation), pack({ ...v, at: Date.now() })), VERDICT_COMMIT_DEADLINES * voteDeadlineMs);
    return 'written';
  } catch (e) {
    // Another juror recorded it first (or an earlier attempt of ours did): it stands. Anything else: it does not.
    return isCasConflict(e) ? 'found' : undefined;
  }
}
