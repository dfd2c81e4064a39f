/** `cellular census`: the census as a table (or --json), from one cell's view and the pulses heard here. */
import { censusSummary, censusTable } from '../census-table.ts';
import { Observer } from '../observer.ts';
import { commandUser, gatherCensus, target } from './target.ts';
import type { Flags } from './usage.ts';

export async function census(flags: Flags): Promise<number> {
  const t = target(flags);
  const user = t.operator ? await commandUser(t.stateDir, t.id, 'observer', 'census') : undefined;
  const observer = await Observer.open({ servers: t.servers, token: t.token, ...(user ? { user } : {}), ...(t.tls ? { tls: t.tls } : {}), organism: t.id, rootPub: t.rootPub, limits: t.genome.limits, jury: t.genome.immune?.jury ?? 9, voteDeadlineMs: t.genome.immune?.voteDeadlineMs ?? 3_000, name: 'cellular census', halfLifeOf: (x) => t.genome.tissues[x]?.halfLifeMs ?? 2_000 });
  try {
    const entries = await gatherCensus(observer, t.genome.limits);
    process.stdout.write(flags.json ? `${JSON.stringify(entries, null, 2)}\n` : `${censusTable(entries)}\n${censusSummary(entries)}\n`);
  } finally {
    await observer.close();
  }
  return 0;
}

