/**
 * A flood of junk on the hormone subjects (issue 20: "a 3 s flood of 100,000 junk hormones
 * made every census declare every cell dead, and homeostasis doubled the organism"). The
 * attacker here is stronger than any cell: grow's own broker connection, which may publish
 * on every hormone subject, sends random bytes under random senders and the root, on every
 * kind. Junk fails the gate before any signature work (malformed), so nobody is suspected,
 * nobody dies and nothing grows; only a pulse's absence could be evidence, and it is not.
 */
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { loadGenome } from '../../organism/kernel/genome/index.ts';
import type { Hormone } from '../../organism/kernel/hormone.ts';
import type { HormoneKind } from '../../organism/kernel/vocabulary.ts';
import { until } from '../helpers/grow.ts';
import { tempDir, uniqueId } from '../helpers/nats.ts';
import { runOrganism } from '../helpers/organism.ts';

test.serial('junk flood - 30,000 junk hormones on every kind (random senders and the root) kill nobody, make nobody suspect and grow nothing', async (t) => {
  const portMin = 20_000 + Math.floor(Math.random() * 40_000);
  const genome = loadGenome({ sets: [`messenger.portMin=${portMin}`, `messenger.portMax=${portMin + 40}`, 'messenger.frontPort=0', 'messenger.scryptLogN=12', 'dashboard.port=0'] });
  const o = await runOrganism(t, { stateDir: tempDir(t), id: uniqueId(), genome });
  await o.waitForPopulation();
  const census = o.observer.census;
  // Every cell pulsing a few times first: the population the flood must leave as it is.
  await until(() => census.living().every((c) => c.state === 'alive' && c.pulses >= 3), 20_000, 'every cell alive and pulsing');
  const before = census.living().map((c) => c.id).sort();
  const changes: string[] = [];
  census.on((e) => {
    if (e.type === 'state' && e.entry.state !== 'alive') changes.push(`${e.entry.id}: ${e.from} → ${e.entry.state}${e.entry.cause ? ` (${e.entry.cause})` : ''}`);
  });
  const decisions: string[] = [];
  o.observer.bus.on((h: Hormone) => {
    if (h.kind === 'decision') decisions.push(`${h.from}: ${JSON.stringify(h.body).slice(0, 200)}`);
  });
  const { nc, ns } = o.observer;
  const kinds: HormoneKind[] = ['pulse', 'digest', 'decision', 'vote', 'accuse', 'verdict', 'birth', 'death', 'toxin'];
  const JUNK = 30_000;
  const t0 = Date.now();
  for (let i = 0; i < JUNK; i++) {
    const from = i % 7 === 0 ? 'root' : `echo-${randomBytes(4).toString('hex')}`;
    nc.publish(ns.hormone(kinds[i % kinds.length]!, from), randomBytes(32 + (i % 300)));
    if (i % 5_000 === 4_999) await nc.flush();
  }
  await nc.flush();
  const sentMs = Date.now() - t0;
  // Past the dead threshold (six missed pulses) twice over after the last junk arrived.
  await new Promise((r) => setTimeout(r, 12 * genome.limits.pulseIntervalMs));
  t.log(`${JUNK} junk hormones in ${sentMs} ms; dropped as malformed by grow's gate: ${o.observer.bus.stats().dropped.malformed}`);
  t.deepEqual(changes, [], 'no cell suspect or dead in grow\'s census');
  t.deepEqual(decisions, [], 'no homeostasis decision: nothing regrown, nothing doubled');
  t.deepEqual(census.living().filter((c) => c.state === 'alive').map((c) => c.id).sort(), before, 'the same cells, all alive');
  t.true(o.observer.bus.stats().dropped.malformed >= JUNK * 0.5, 'the junk reached grow and was dropped there');
});
