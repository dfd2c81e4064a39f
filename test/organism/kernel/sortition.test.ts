/**
 * Sortition (organism/kernel/sortition.ts) and the panel check (cells/immune/jury.ts), as
 * properties over random censuses: a panel never holds the accused or its lineage, is at
 * most the jury size, comes from the accused's host when that host is big enough, is the
 * same for every cell that holds the same census and beacon, and "whom I watch" is exactly
 * "whose panel holds me". A packed panel is refused; a census one cell off is tolerated.
 */
import test from 'ava';
import fc from 'fast-check';
import { Ring, type Candidate } from '../../../organism/kernel/sortition.ts';
import { panelHolds } from '../../../cells/immune/jury.ts';
import { beaconOf } from '../../../organism/grow/beacon.ts';
import { generateKeyPairSync } from 'node:crypto';

const census = fc
  .record({ n: fc.integer({ min: 1, max: 80 }), hosts: fc.integer({ min: 1, max: 3 }), seed: fc.integer() })
  .map(({ n, hosts, seed }) => {
    const cells: Candidate[] = [];
    for (let i = 0; i < n; i++) {
      // About a third of the cells are children of an earlier one (lineages to skip).
      const parent = i > 0 && (seed + i) % 3 === 0 ? cells[(seed >>> 0) % i]!.id : null;
      cells.push({ id: `c${i}-${(seed + i * 7919) >>> 0}`, host: `h${(i + seed) % hosts}`, parent, born: i });
    }
    return cells;
  });

function lineage(id: string, cells: Candidate[]): Set<string> {
  const out = new Set([id]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const c of cells) if (!out.has(c.id) && c.parent !== null && out.has(c.parent)) grew = out.add(c.id) !== undefined;
  }
  return out;
}

test('sortition - a panel never holds its accused or its lineage, is at most the jury, and comes from the accused host when it is big enough (property)', (t) => {
  fc.assert(
    fc.property(census, fc.string({ minLength: 1, maxLength: 8 }), fc.integer({ min: 1, max: 15 }), (cells, beacon, m) => {
      const ring = new Ring(beacon, cells);
      for (const c of cells) {
        const panel = ring.panel(c.id, m);
        const barred = lineage(c.id, cells);
        if (panel.length > m || panel.some((j) => barred.has(j))) return false;
        if (new Set(panel).size !== panel.length) return false;
        // Its host's cells when m of them could sit on the panel (outside its lineage).
        const local = cells.filter((x) => x.host === c.host && !barred.has(x.id));
        if (local.length >= m && panel.some((j) => cells.find((x) => x.id === j)!.host !== c.host)) return false;
        // Full when there are enough eligible cells in the pool.
        const eligible = local.length >= m ? local.length : cells.filter((x) => !barred.has(x.id)).length;
        if (panel.length !== Math.min(m, eligible)) return false;
      }
      return true;
    }),
    { numRuns: 200 },
  );
  t.pass();
});

test('sortition - a panel does not move while the accused\'s lineage grows or cells are born after the accusation (property)', (t) => {
  // A cancer on a host with few honest cells: its children, and cells born after the
  // accusation, can never sit on its panel, so they must not change where it is drawn from
  // (they did: the pool flipped from every cell to the host's few honest ones, and cells
  // that drew at another moment did not hear the trial).
  fc.assert(
    fc.property(census, fc.string({ minLength: 1, maxLength: 8 }), fc.integer({ min: 1, max: 9 }), fc.nat(), fc.integer({ min: 1, max: 30 }), (cells, beacon, m, pick, grown) => {
      const accused = cells[pick % cells.length]!;
      const at = cells.length; // the accusation: after every cell of the census
      const before = new Ring(beacon, cells).panel(accused.id, m, at);
      const later: Candidate[] = [...cells];
      for (let i = 0; i < grown; i++) {
        const kin = later.filter((x) => lineage(accused.id, later).has(x.id));
        // Children of the lineage on the accused's host, and strangers born after the accusation.
        later.push({ id: `kid${i}`, host: accused.host, parent: kin[i % kin.length]!.id, born: at - 1 });
        later.push({ id: `late${i}`, host: accused.host, parent: null, born: at + 1 + i });
      }
      return new Ring(beacon, later).panel(accused.id, m, at).join() === before.join();
    }),
    { numRuns: 200 },
  );
  t.pass();
});

test('sortition - whom a cell watches (alone, or from the whole ring\'s index) is exactly whose panel holds it, and every cell draws the same panels from the same census (property)', (t) => {
  fc.assert(
    fc.property(census, fc.string({ minLength: 1, maxLength: 8 }), fc.integer({ min: 1, max: 9 }), (cells, beacon, m) => {
      const ring = new Ring(beacon, cells);
      const again = new Ring(beacon, [...cells].reverse());
      for (const c of cells) {
        if (ring.panel(c.id, m).join() !== again.panel(c.id, m).join()) return false;
        const watched = new Set(ring.watchedBy(c.id, m, cells.length));
        // The whole ring's index (a process holding many cells) says the same.
        const indexed = new Set(ring.watchers(m).get(c.id) ?? []);
        if (indexed.size !== watched.size) return false;
        for (const other of cells) {
          if (other.id === c.id) continue;
          if (watched.has(other.id) !== ring.panel(other.id, m).includes(c.id)) return false;
          if (indexed.has(other.id) !== watched.has(other.id)) return false;
        }
      }
      return true;
    }),
    { numRuns: 100 },
  );
  t.pass();
});

test('sortition - another beacon draws other panels; an accuser cannot name its own', (t) => {
  const cells: Candidate[] = Array.from({ length: 60 }, (_, i) => ({ id: `cell-${i}`, host: 'h', parent: null, born: 0 }));
  const a = new Ring('epoch-1', cells).panel('cell-0', 9);
  const b = new Ring('epoch-2', cells).panel('cell-0', 9);
  t.notDeepEqual(a, b, 'a new epoch, a new panel');
  const ring = new Ring('epoch-1', cells);
  t.true(panelHolds({ accused: 'cell-0', at: 1, jury: a }, ring, 9), 'the true panel is heard');
  const outsider = cells.find((c) => !a.includes(c.id) && c.id !== 'cell-0')!.id;
  t.true(panelHolds({ accused: 'cell-0', at: 1, jury: [...a.slice(0, 8), outsider] }, ring, 9), 'one cell off (a census in flight) is tolerated');
  t.false(panelHolds({ accused: 'cell-0', at: 1, jury: [...a.slice(0, 7), outsider, cells.find((c) => !a.includes(c.id) && c.id !== 'cell-0' && c.id !== outsider)!.id] }, ring, 9), 'two cells off is not');
  const packed = cells.filter((c) => !a.includes(c.id) && c.id !== 'cell-0').slice(0, 9).map((c) => c.id);
  t.false(panelHolds({ accused: 'cell-0', at: 1, jury: packed }, ring, 9), 'a packed panel is not heard');
  t.false(panelHolds({ accused: 'cell-0', at: 1, jury: [...a, 'cell-58'] }, ring, 9), 'a panel larger than the jury is not heard');
  t.false(panelHolds({ accused: 'cell-0', at: 1, jury: [a[0]!, a[0]!, ...a.slice(2)] }, ring, 9), 'a panel naming a cell twice is not heard');
  t.false(panelHolds({ accused: 'cell-0', at: 1 }, ring, 9), 'no panel: not heard');
});

test('beacon - every holder of the root key computes the same value, another key another one; bound to organism and epoch', (t) => {
  const root = generateKeyPairSync('ed25519');
  t.is(beaconOf(root.privateKey, 'org1', 42), beaconOf(root.privateKey, 'org1', 42), 'deterministic: every grow agrees');
  t.not(beaconOf(root.privateKey, 'org1', 42), beaconOf(root.privateKey, 'org1', 43), 'a new epoch, a new value');
  t.not(beaconOf(root.privateKey, 'org1', 42), beaconOf(root.privateKey, 'org2', 42), 'bound to the organism');
  const other = generateKeyPairSync('ed25519');
  t.not(beaconOf(other.privateKey, 'org1', 42), beaconOf(root.privateKey, 'org1', 42), 'another key gives another value');
  t.regex(beaconOf(root.privateKey, 'org1', 42), /^[0-9a-f]{32}$/);
});
