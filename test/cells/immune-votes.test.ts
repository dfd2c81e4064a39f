/**
 * Which votes are forgeries. Neither a vote on an accusation this cell received but did not
 * hear — its census drew another panel, a birth apart from the accuser's — (an honest juror's
 * vote: at 108 cells taking it for forgery convicted an honest cell) nor one whose accusation
 * never came (it may be late, or lost; at 100 cells taking those for forgery set off 1,905
 * accusations against honest cells) is evidence: both are dropped, counted in no tally. The immune
 * system runs in-process here, its hormones handed to it as its bus would after checking
 * their signatures; the clock is the test's.
 */
import test from 'ava';
import { Immune, WATCHER_TURN_MS } from '../../cells/immune/immune.ts';
import type { Logger } from '../../cells/logger.ts';
import { Census } from '../../organism/kernel/census.ts';
import { Ring } from '../../organism/kernel/sortition.ts';
import { defaultGenome } from '../../organism/kernel/genome/index.ts';
import { onBeat } from '../../organism/kernel/phase.ts';
import type { Hormone } from '../../organism/kernel/hormone.ts';
import type { AccuseBody, HormoneKind, VoteBody } from '../../organism/kernel/vocabulary.ts';

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {} };

function immuneOf(clock: { t: number }, certs: ReadonlyMap<string, { parent: string | null }> = new Map(), young = false) {
  const gene = defaultGenome().immune;
  const limits = { ...defaultGenome().limits, pulseIntervalMs: 40 };
  const census = new Census({ limits, now: () => clock.t, pulsesOf: () => false });
  let deliver: (h: Hormone) => void = () => {};
  const bus = {
    on: (f: (h: Hormone) => void) => {
      deliver = f;
      return () => {};
    },
    onForgery: () => () => {},
    quarantine: () => {},
    publish: () => {},
  };
  const immune = new Immune({
    gene, limits, organism: 'o1', self: { id: 'me', host: 'h1' }, bus: bus as never, census, certs: { certOf: (id: string) => certs.get(id), learn: async () => undefined } as never,
    log: quiet, now: () => clock.t,
  });
  immune.start();
  // An established cell: past the window after its start in which toxins on trials it could
  // not have heard are not its to judge (the last test here checks that window).
  if (!young) clock.t += 20_000;
  let seq = 0;
  const send = <B>(kind: HormoneKind, from: string, body: B) => deliver({ v: 1, kind, from, seq: ++seq, ts: clock.t, body, sig: new Uint8Array(64) });
  return { immune, send, gene, census };
}

/**
 * The next beat of the immune system's cadence: its review has run by then (it subscribed
 * first). With no digest here, that is the beat's fallback, within a few strides.
 */
const beat = () =>
  new Promise<void>((resolve) => {
    // (Beat timers are unref'd: this keeps the process up while it waits, for 10 s at most.)
    const keep = setTimeout(() => undefined, 10_000);
    const b = onBeat({ ...defaultGenome().limits, pulseIntervalMs: 40 }, () => {
      clearTimeout(keep);
      b.stop();
      resolve();
    });
  });

test('immune votes - a vote on an accusation received but not heard is no forgery, nor one on an accusation that never came', async (t) => {
  const clock = { t: 1_800_000_000_000 };
  const { immune, send, gene } = immuneOf(clock);
  t.teardown(() => immune.close());
  // An accusation whose panel this cell does not draw (none named: no epoch, no panel).
  const unheard: AccuseBody = { id: 'accuser.1', accused: 'x', kind: 'flood', detail: 'd', at: clock.t, lineage: false };
  send('accuse', 'accuser', unheard);
  // Its jurors vote, before and after it arrived anywhere.
  send<VoteBody>('vote', 'juror-a', { accusation: 'accuser.1', accused: 'x', guilty: true, detail: '' });
  // A vote that came before its accusation is held, and still no forgery once it arrives.
  send<VoteBody>('vote', 'juror-b', { accusation: 'accuser.2', accused: 'y', guilty: true, detail: '' });
  send('accuse', 'accuser', { ...unheard, id: 'accuser.2', accused: 'y' });
  // Votes on an accusation that never comes (late past the deadline, lost, or never made).
  for (let i = 0; i < 5; i++) send<VoteBody>('vote', 'stray', { accusation: `never-${i}`, accused: 'z', guilty: true, detail: '' });
  clock.t += gene.voteDeadlineMs + 1;
  await beat();
  t.is(immune.evidence.against('juror-a', 'forgery'), undefined);
  t.is(immune.evidence.against('juror-b', 'forgery'), undefined);
  t.is(immune.evidence.against('stray', 'forgery'), undefined, 'five votes on no trial: still no evidence');
  t.is(immune.stats.forgeries, 0);
  t.is(immune.stats.strayVotes, 5, 'dropped at their deadline, and counted');
  t.is(immune.stats.accusations, 0, 'and no accusation made of them');
});

test('immune digest findings - a finding counts only from a digest signed by the root (a host grow); a cell that sends a digest frames nobody, and its digest is forgery', async (t) => {
  const clock = { t: 1_800_000_000_000 };
  const { immune, send } = immuneOf(clock);
  t.teardown(() => immune.close());
  const row = (i: string, e?: { k: 'liar' | 'flood' | 'genome'; x: string }) => ({
    i, q: 'echo', s: 'alive', c: null, l: 0, m: 0, d: 0, u: 0, r: 50, g: 0, p: 1, b: 1, a: null, w: null, n: 1, z: clock.t, k: [0, 0, 0, 0], ...(e ? { e } : {}),
  });
  const digest = (rows: unknown[]) => ({ host: 'h1', round: 1, part: 0, parts: 1, full: false, alive: rows.length, epoch: 1, beacon: 'b', rows });
  // A cell's "digest" naming an honest cell a liar: not the root's word.
  send('digest', 'evil-1', digest([row('victim-1', { k: 'liar', x: 'made up' })]));
  t.is(immune.evidence.against('victim-1'), undefined, 'a cell cannot say what a host says');
  t.is(immune.stats.forgeries, 1, 'its digest is held against it');
  // The root's digest (a host's grow) is evidence, and takes it back with a row without it.
  send('digest', 'root', digest([row('liar-1', { k: 'liar', x: 'claims 900 ms of CPU' })]));
  t.deepEqual(immune.evidence.against('liar-1'), { kind: 'liar', detail: 'its host: claims 900 ms of CPU', host: true });
  send('digest', 'root', digest([row('liar-1')]));
  t.is(immune.evidence.against('liar-1'), undefined);
  // A dead row takes it back too (nothing to accuse).
  send('digest', 'root', digest([row('gone-1', { k: 'flood', x: '900/s' })]));
  send('digest', 'root', digest([{ ...row('gone-1', { k: 'flood', x: '900/s' }), s: 'dead' }]));
  t.is(immune.evidence.against('gone-1'), undefined);
});

// A toxin naming `lineage` is legitimate for a descendant of a lineage this cell condemned, or
// found guilty by its own tally with its record still withheld (a saturated store): at 100
// cells the honest killer on a cancer's host was convicted of forgery by cells whose record
// of the verdict had not landed yet. One for a cell of a known, innocent lineage still is
// forgery; one for a cell whose certificate is not known here cannot be checked and is not.
test('immune toxins - a lineage toxin is forgery only for a cell known here to be of an innocent lineage', async (t) => {
  const clock = { t: 1_800_000_000_000 };
  const certs = new Map<string, { parent: string | null }>([['honest-root', { parent: null }], ['honest-child', { parent: 'honest-root' }]]);
  const { immune, send, gene } = immuneOf(clock, certs);
  t.teardown(() => immune.close());
  const toxin = (from: string, cell: string) => send('toxin', from, { accusation: 'lineage', accused: cell, cell, pid: 1, host: 'h2' });
  for (let i = 0; i < 3; i++) toxin('killer-a', `never-seen-child-${i}`);
  for (let i = 0; i < 3; i++) toxin('killer-b', 'honest-child');
  clock.t += gene.voteDeadlineMs + 501;
  await beat();
  t.is(immune.evidence.against('killer-a', 'forgery'), undefined, 'three cells it cannot place: no evidence');
  t.like(immune.evidence.against('killer-b', 'forgery'), { kind: 'forgery' });
  t.regex(immune.evidence.against('killer-b', 'forgery')?.detail ?? '', /a toxin for honest-child without a guilty verdict \(lineage\)/);
});

// A toxin citing a trial this cell received but did not hear (its census drew another panel)
// cannot be checked here, nor can a lineage toxin for a descendant of a cell accused of cancer
// in such a trial: neither is evidence. At 1,000 cells (simulations/scale-hosts.ts) a cancer's
// children moved its panel faster than censuses agreed, and the cells that had not heard its
// trial convicted three honest killers of forgery. A toxin on a trial this cell heard and
// acquitted still is forgery.
test('immune toxins - a toxin on a trial received but not heard is no forgery, nor a lineage toxin below its accused', async (t) => {
  const clock = { t: 1_800_000_000_000 };
  const certs = new Map<string, { parent: string | null }>([['cancer-x', { parent: null }], ['cancer-child', { parent: 'cancer-x' }], ['cancer-grandchild', { parent: 'cancer-child' }], ['honest-root', { parent: null }], ['honest-child', { parent: 'honest-root' }]]);
  const { immune, send, gene } = immuneOf(clock, certs);
  t.teardown(() => immune.close());
  // A cancer accusation whose panel this cell does not draw (none named): received, not heard.
  send<AccuseBody>('accuse', 'accuser', { id: 'accuser.1', accused: 'cancer-x', kind: 'cancer', detail: '20 children on a budget of 16', at: clock.t, lineage: true });
  const toxin = (from: string, accusation: string, cell: string) => send('toxin', from, { accusation, accused: cell, cell, pid: 1, host: 'h2' });
  for (let i = 0; i < 3; i++) toxin('killer-a', 'accuser.1', 'cancer-x');
  toxin('killer-b', 'lineage', 'cancer-child');
  toxin('killer-b', 'lineage', 'cancer-grandchild');
  toxin('killer-b', 'lineage', 'cancer-child');
  // The control: a lineage toxin for a cell of a known, innocent lineage.
  for (let i = 0; i < 3; i++) toxin('killer-c', 'lineage', 'honest-child');
  clock.t += gene.voteDeadlineMs + 501;
  await beat();
  t.is(immune.evidence.against('killer-a', 'forgery'), undefined, 'toxins on a trial received but not heard: no evidence');
  t.is(immune.evidence.against('killer-b', 'forgery'), undefined, 'lineage toxins below a cell accused in such a trial: no evidence');
  t.like(immune.evidence.against('killer-c', 'forgery'), { kind: 'forgery' }, 'an innocent lineage\'s toxins still are forgery');
});

// Evidence every cell sees for itself (here forged digests, which only a grow may send): the
// accused's watchers accuse at once, and any other cell only after a grace of two to three
// vote deadlines with no trial against it. At 100 cells every cell that saw a cancer's births
// accused it at the same instant: 45 trials, each making every cell vote.
test('immune accusations - on evidence every cell sees, a watcher accuses in its turn on the panel, another cell only after a grace', async (t) => {
  const clock = { t: 1_800_000_000_000 };
  const { immune, send, gene, census } = immuneOf(clock);
  t.teardown(() => immune.close());
  const ids = ['me', ...Array.from({ length: 24 }, (_, i) => `c${String(i).padStart(2, '0')}`)];
  let round = 0;
  const row = (i: string) => ({ i, q: 'echo', s: 'alive', c: null, l: 0, m: 0, d: 0, u: 0, r: 50, g: 0, p: 1, b: clock.t - 60_000, a: null, w: null, n: 1, z: clock.t, k: [0, 0, 0, 0] });
  // What the host's grow says reaches the census and the immune system alike (their bus).
  const hostSays = (rows: unknown[]) => {
    const body = { host: 'h1', round: ++round, part: 0, parts: 1, full: round === 1, alive: ids.length, epoch: 1, beacon: 'b', rows };
    census.observe({ v: 1, kind: 'digest', from: 'root', seq: round, ts: clock.t, body, sig: new Uint8Array(64) } as Hormone);
    send('digest', 'root', body);
  };
  hostSays(ids.map(row));
  const ring = new Ring('b', ids.map((id) => ({ id, host: 'h1', parent: null, born: clock.t - 60_000 })));
  const watched = new Set(ring.watchedBy('me', gene.jury));
  const watchedPeer = ids.find((id) => id !== 'me' && watched.has(id))!;
  const otherPeer = ids.find((id) => id !== 'me' && !watched.has(id))!;
  t.truthy(watchedPeer);
  t.truthy(otherPeer);
  for (const from of [watchedPeer, otherPeer]) for (let i = 0; i < gene.forgeriesMax; i++) send('digest', from, { host: 'h1', round: 1, part: 0, parts: 1, full: false, alive: 1, epoch: 1, beacon: 'b', rows: [] });
  t.like(immune.evidence.against(otherPeer), { kind: 'forgery' }, 'both hold the evidence here');
  // Watchers take turns by their place on the panel: the first at once, the k-th k turns later.
  const turn = ring.panel(watchedPeer, gene.jury).indexOf('me');
  t.true(turn >= 0, 'this cell is on the panel of the peer it watches');
  t.log(`this cell's turn on the panel: ${turn}`);
  await beat();
  if (turn > 0) {
    t.is(immune.stats.accusations, 0, `its turn (${turn}) has not come yet`);
    clock.t += turn * WATCHER_TURN_MS;
    await beat();
  }
  t.is(immune.stats.accusations, 1, 'the watched one accused in its turn');
  // Beats every half second of the test's clock, as an organism's come, until it accuses the other too.
  const start = clock.t;
  while (immune.stats.accusations < 2 && clock.t - start < 5 * gene.voteDeadlineMs) {
    clock.t += 500;
    hostSays([]);
    await beat();
  }
  t.is(immune.stats.accusations, 2, 'past the grace with no trial against it, this cell accuses it too');
  const waited = clock.t - start;
  t.true(waited >= 2 * gene.voteDeadlineMs && waited <= 3 * gene.voteDeadlineMs + 500, `not its to watch: accused after ${waited} ms, within two to three vote deadlines`);
});

// A guilty verdict condemns its accused (and for cancer its lineage), nobody else: a toxin
// under it that names another cell is a killer using a real verdict as cover, and is forgery;
// one that names a cell whose lineage this cell cannot trace is not evidence.
test('immune toxins - a toxin under a real guilty verdict that names a cell it did not condemn is forgery', async (t) => {
  const clock = { t: 1_800_000_000_000 };
  const certs = new Map<string, { parent: string | null }>([['kid', { parent: 'bad2' }], ['grandkid', { parent: 'kid' }]]);
  const { immune, send, gene, census } = immuneOf(clock, certs);
  t.teardown(() => immune.close());
  const ids = ['me', 'bad', 'bad2', 'victim', ...Array.from({ length: 16 }, (_, i) => `j${String(i).padStart(2, '0')}`)];
  const born = clock.t - 60_000;
  const row = (i: string) => ({ i, q: 'echo', s: 'alive', c: null, l: 0, m: 0, d: 0, u: 0, r: 50, g: 0, p: 1, b: born, a: null, w: null, n: 1, z: clock.t, k: [0, 0, 0, 0] });
  const body = { host: 'h1', round: 1, part: 0, parts: 1, full: true, alive: ids.length, epoch: 1, beacon: 'b', rows: ids.map(row) };
  census.observe({ v: 1, kind: 'digest', from: 'root', seq: 1, ts: clock.t, body, sig: new Uint8Array(64) } as Hormone);
  send('digest', 'root', body);
  const ring = new Ring('b', ids.map((id) => ({ id, host: 'h1', parent: null, born })));
  // Two trials made guilty by their panels: a flooder, and a cancer (its lineage condemned).
  const convict = (id: string, accused: string, lineage: boolean) => {
    const jury = ring.panel(accused, gene.jury, clock.t);
    send<AccuseBody>('accuse', jury[0]!, { id: `${jury[0]}.${id}`, accused, kind: lineage ? 'cancer' : 'flood', detail: 'd', at: clock.t, lineage, jury, epoch: 1 });
    for (const j of jury) send<VoteBody>('vote', j, { accusation: `${jury[0]}.${id}`, accused, guilty: true, detail: 'seen' });
    return jury;
  };
  const flooderJury = convict('1', 'bad', false);
  const cancerJury = convict('2', 'bad2', true);
  const killers = flooderJury.filter((j) => j !== 'me');
  const a1 = `${flooderJury[0]}.1`;
  const a2 = `${cancerJury[0]}.2`;
  // Each sent as often as forgery needs to become a finding (one would count, under the threshold).
  const toxin = (from: string, accusation: string, cell: string) => {
    for (let i = 0; i < gene.forgeriesMax; i++) send('toxin', from, { accusation, accused: cell, cell, pid: 1, host: 'h1' });
  };
  toxin(killers[0]!, a1, 'bad'); // what it condemned
  toxin(killers[1]!, a2, 'grandkid'); // of the cancer's lineage, by certificates
  toxin(killers[2]!, a2, 'never-seen'); // a lineage this cell cannot trace
  toxin(killers[3]!, a1, 'victim'); // an honest cell, under the flooder's verdict
  toxin(killers[4]!, a2, 'victim'); // an honest root-made cell, under the cancer's
  clock.t += 10;
  await beat();
  for (const k of killers.slice(0, 3)) t.is(immune.evidence.against(k, 'forgery'), undefined, `${k}'s toxin named what the verdict condemned, or what cannot be traced here`);
  t.like(immune.evidence.against(killers[3]!, 'forgery'), { kind: 'forgery' }, 'a toxin for an honest cell under another\'s verdict is forgery');
  t.like(immune.evidence.against(killers[4]!, 'forgery'), { kind: 'forgery' }, 'and under a cancer\'s verdict, for a cell not of its lineage');
  t.is(immune.stats.forgeries, 2 * gene.forgeriesMax);
});

// Accusations carry their accuser's id, and only cancer condemns a lineage: two versions of
// one accusation (one condemning a lineage, one not) would split the cells that heard them,
// and the ones holding the narrow version would take honest killers for forgers. A cell that
// started after a trial could not have heard it: toxins on it are not its to judge.
test('immune accusations and toxins - an accusation under another\'s id or with a lineage flag its kind does not have is forgery; a young cell judges no toxin on a trial before it', async (t) => {
  const clock = { t: 1_800_000_000_000 };
  const { immune, send, gene } = immuneOf(clock, new Map(), true);
  t.teardown(() => immune.close());
  // Young: toxins on trials it never had, for lineages it never saw condemned.
  for (let i = 0; i < gene.forgeriesMax; i++) send('toxin', 'killer-old', { accusation: `someone.${i}`, accused: 'x', cell: 'x', pid: 1, host: 'h2' });
  clock.t += gene.voteDeadlineMs + 501;
  await beat();
  t.is(immune.evidence.against('killer-old', 'forgery'), undefined, 'toxins on trials from before its start: not evidence');
  // Past the window, the same toxins are.
  clock.t += 20_000;
  for (let i = 0; i < gene.forgeriesMax; i++) send('toxin', 'killer-new', { accusation: `someone.${i}`, accused: 'x', cell: 'x', pid: 1, host: 'h2' });
  clock.t += gene.voteDeadlineMs + 501;
  await beat();
  t.like(immune.evidence.against('killer-new', 'forgery'), { kind: 'forgery' }, 'a toxin with no verdict behind it, once the cell could have heard one');
  const base: AccuseBody = { id: 'mallory.1', accused: 'x', kind: 'flood', detail: 'd', at: clock.t, lineage: false };
  send('accuse', 'mallory', { ...base, id: 'alice.7' }); // another's id
  send('accuse', 'mallory', { ...base, id: 'mallory.2', lineage: true }); // a flood condemning a lineage
  send('accuse', 'mallory', { ...base, id: 'mallory.3', kind: 'cancer' }); // a cancer sparing its lineage
  t.like(immune.evidence.against('mallory', 'forgery'), { kind: 'forgery' });
  t.regex(immune.evidence.against('mallory', 'forgery')?.detail ?? '', /not its own|lineage/);
});
