/**
 * The ATP budget: hard limits on growth. Cells and resident memory per host are read from
 * the census (every cell reports its host and RSS); mitosis per minute is a token window
 * kept in the homeostasis bucket and taken by compare-and-set, so it holds organism-wide;
 * the lineage budget travels in certificates (cells/spawn.ts childBudget).
 */
import type { KV } from '@nats-io/kv';
import { updateWithRetries } from '../organism/kernel/compare-and-set.ts';
import type { CensusEntry } from '../organism/kernel/census.ts';
import type { Limits } from '../organism/kernel/genome/index.ts';
import { ATP_KEY, packRecord, parseAtpRecord, type AtpRecord, type PendingCell } from '../organism/kernel/homeostasis-record.ts';

const MIB = 1024 * 1024;
const MINUTE = 60_000;

export interface HostRoom {
  /** Cells this host may still take. */
  cells: number;
  /** New cells its memory budget still allows, at the mean RSS of its living cells. */
  memory: number;
  /** Living cells on the host and pending ones, and their RSS. */
  living: number;
  rssMb: number;
}

/** Room for new cells on `host`, counting cells being made there as present. */
export function hostRoom(census: readonly CensusEntry[], pending: readonly PendingCell[], host: string, limits: Pick<Limits, 'cellsPerHost' | 'rssPerHostMb'>): HostRoom {
  const here = census.filter((c) => c.host === host && c.state !== 'dead');
  const ids = new Set(here.map((c) => c.id));
  const coming = pending.filter((p) => p.host === host && p.how !== 'stem' && !ids.has(p.id)).length;
  const rss = here.reduce((s, c) => s + c.rss, 0);
  const measured = here.filter((c) => c.rss > 0);
  // A cell not yet measured costs what the others cost (or 64 MiB when none is measured).
  const perCell = measured.length > 0 ? measured.reduce((s, c) => s + c.rss, 0) / measured.length : 64 * MIB;
  const budget = limits.rssPerHostMb * MIB - rss - coming * perCell;
  return {
    cells: Math.max(0, limits.cellsPerHost - here.length - coming),
    memory: Math.max(0, Math.floor(budget / perCell)),
    living: here.length + coming,
    rssMb: Math.round(rss / MIB),
  };
}

/**
 * Takes up to `wanted` spawn tokens from the organism-wide window of
 * limits.mitosisPerMinute; returns how many it got. Compare-and-set, retried on conflict:
 * tokens are a counter, not a decision, so a lost race just tries again.
 */
export async function takeSpawnTokens(kv: KV, wanted: number, perMinute: number, now: () => number = Date.now): Promise<number> {
  if (wanted <= 0) return 0;
  const outcome = await updateWithRetries<number>(kv, ATP_KEY, (entry) => {
    let record: AtpRecord = { v: 1, spawns: [] };
    if (entry && entry.operation === 'PUT' && entry.value.length > 0) {
      try {
        record = parseAtpRecord(entry.value);
      } catch {
        // A malformed window is rewritten from empty: better one burst than a stuck organism.
      }
    }
    const t = now();
    const recent = record.spawns.filter((s) => t - s < MINUTE);
    const granted = Math.max(0, Math.min(wanted, perMinute - recent.length));
    if (granted === 0) return { keep: 0 };
    return { write: packRecord({ v: 1, spawns: [...recent, ...Array.from({ length: granted }, () => t)] }), value: granted };
  }, { attempts: 8, retryOn: () => true }); // whatever refused the write (a conflict, no quorum): read again
  return outcome.type === 'written' || outcome.type === 'kept' ? outcome.value : 0;
}
