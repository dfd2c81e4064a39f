/**
 * A host that comes back while its tissue is at max still gets its perHost share: two grows
 * of one organism on one NATS, as hosts `ha` and `hb` (one process table, told apart by the
 * cells' --host markers).
 */
import test from 'ava';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { FAST, grow, observe, until } from '../../helpers/grow.ts';
import { startNats, tempDir, uniqueId } from '../../helpers/nats.ts';
import { ROOT_KEY_FILE, ROOT_PUB_FILE } from '../../../organism/grow/root-key.ts';
import { isProcessOf, localCells, signalCell } from '../../../organism/kernel/processes.ts';
import { cellMarkers } from '../../../cells/spawn.ts';

/** Both tests' genome: fast pulses, no stem pool, echo with a perHost share of 1 whose idle cells stay. */
const shareSets = (min: number, max: number): string[] => [
  ...FAST.filter((s) => !s.startsWith('limits.')), 'limits.pulseIntervalMs=250', 'tissues.stem.min=0',
  `tissues.echo.min=${min}`, `tissues.echo.max=${max}`, 'tissues.echo.perHost=1', 'tissues.echo.idleMs=600000',
];

/** Grows host `hb` of the organism that grow `a` runs on `natsUrl`: another state dir, the same root key. */
async function secondHost(t: Parameters<typeof grow>[0], a: Awaited<ReturnType<typeof grow>>, natsUrl: string, id: string, sets: string[]): ReturnType<typeof grow> {
  const bDir = join(tempDir(t), 'state');
  mkdirSync(bDir, { recursive: true, mode: 0o700 });
  for (const f of [ROOT_KEY_FILE, ROOT_PUB_FILE]) copyFileSync(join(a.stateDir, f), join(bDir, f));
  return grow(t, { stateDir: bDir, args: ['--nats', natsUrl, '--id', id, '--host', 'hb'], sets });
}

test.serial('grow - a host joining a tissue at its max takes its perHost share, and an extra elsewhere leaves', async (t) => {
  const nats = await startNats(t);
  const id = uniqueId('share');
  // ha holds both echo cells (min = max = 2); each host's share is one. Idle cells stay (idleMs long).
  const sets = shareSets(2, 2);
  const a = await grow(t, { args: ['--nats', nats.url, '--id', id, '--host', 'ha'], sets });
  const observer = await observe(t, a);
  const echo = () => observer.census.living().filter((c) => c.tissue === 'echo' && c.state === 'alive');
  await until(() => echo().length === 2 && echo().every((c) => c.host === 'ha'), 20_000, 'both echo cells on ha');
  // hb is another host of the same organism: the same root key.
  const b = await secondHost(t, a, nats.url, id, sets);
  // (Whether hb's grow saw echo at max when it joined depends on how much of the census it had
  // heard by then; either way three cells are alive for a moment.)
  t.regex(b.stderr(), /joined with echo-\S+ \(tissues\.echo\.perHost 1/);
  const spread = () => {
    const byHost = new Map<string, number>();
    for (const c of echo()) byHost.set(c.host, (byHost.get(c.host) ?? 0) + 1);
    return byHost;
  };
  // Rule 3 lets the youngest go where its host keeps its share: one of ha's, not hb's only one.
  await until(() => echo().length === 2 && spread().get('ha') === 1 && spread().get('hb') === 1, 20_000, `one echo cell on each host (now ${JSON.stringify([...spread()])})`);
  t.deepEqual(Object.fromEntries(spread()), { ha: 1, hb: 1 });
});

test.serial('grow - a host joining while the other host\'s grow is gone (its cells live on) joins the organism: a cell answers, so it does not seed it again', async (t) => {
  const nats = await startNats(t);
  const id = uniqueId('orphan');
  const sets = shareSets(1, 2);
  const a = await grow(t, { args: ['--nats', nats.url, '--id', id, '--host', 'ha'], sets });
  const observer = await observe(t, a);
  await until(() => observer.census.living().some((c) => c.tissue === 'echo' && c.state === 'alive' && c.host === 'ha'), 20_000, 'an echo cell on ha');
  // ha's cells are ended by pid here: their grow, which would stop them, is killed below.
  const orphans = localCells(id, 'ha');
  t.true(orphans.length > 0);
  t.teardown(() => {
    for (const c of orphans) signalCell(c.pid, c.cell, id, 'SIGKILL');
  });
  a.child.kill('SIGKILL');
  await a.exited;
  // Its cells live on, but nothing speaks for ha's host any more: no digest, no rows.
  t.true(orphans.every((c) => isProcessOf(c.pid, cellMarkers(c.cell))), 'ha\'s cells outlive their grow');
  const b = await secondHost(t, a, nats.url, id, sets);
  t.regex(b.stderr(), /is alive \(a cell answered a census request\): host hb joins it/);
  t.notRegex(b.stderr(), /seeds it again/);
});
