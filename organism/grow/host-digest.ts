/**
 * A host's digest: what every cell needs to know of this host's cells, said once per
 * interval by the one process that already hears them all. grow verifies its own host's
 * pulses (its census), finds a killed cell's pid gone within a quarter interval, and every
 * `limits.pulseIntervalMs` publishes, as `root`, the rows that changed beyond a dead band
 * (and every row at least every `refreshMs`); a round with no row to send only on the calm
 * stride's intervals (`limits.calmStride`). Cells read digests, never each other's pulses: a
 * cell's membership cost is a few messages per interval per host, whatever the population
 * (docs/cells.md, "Membership").
 */
import { everyPhase, onStride, PHASE, type PhasedTimer } from '../kernel/phase.ts';
import { codec } from '../wire/codec.ts';
import type { Census, CensusEntry } from '../kernel/census.ts';
import type { Limits } from '../kernel/genome/index.ts';
import { DIGEST_BAND, DIGEST_REPEAT, type DigestBody, type DigestRow, type RowFinding } from '../kernel/vocabulary.ts';

export interface HostDigestOptions {
  census: Census;
  host: string;
  limits: Pick<Limits, 'pulseIntervalMs' | 'hormoneMaxBytes'> & Partial<Pick<Limits, 'calmStride'>>;
  publish: (body: DigestBody) => void;
  /** The organism's public random value for an epoch (organism/grow/beacon.ts). */
  beacon: (epoch: number) => string;
  /** Length of a beacon epoch, ms. @default 60000 */
  epochMs?: number;
  /** True while the process `entry` names still exists (a kill -9 is seen without waiting out pulses). */
  exists: (entry: CensusEntry) => boolean;
  /**
   * The host's watch over its cells (organism/grow/host-watch.ts): run at each round, its
   * findings go in the rows. Without one, rows carry no findings.
   */
  watch?: { round(now: number): void; finding(id: string): RowFinding | undefined; holdsTo(): string | undefined };
  /**
   * Every row is sent at least this often. A cell that lost a round asks for the host whole
   * (organism/kernel/census.ts onGap), so this is only the last resort: each refresh is a row
   * every cell of the organism decodes, O(N) per cell per refresh. @default 60000
   */
  refreshMs?: number;
  now?: () => number;
}

const BAND = DIGEST_BAND;
/** Room in a hormone for the envelope and the digest's own fields. */
const OVERHEAD = 512;

export function digestRow(e: CensusEntry, finding?: RowFinding): DigestRow {
  const clamp = (v: number, max: number) => Math.max(0, Math.min(max, Math.round(v)));
  const row: DigestRow = {
    i: e.id, q: e.tissue, s: e.state, c: e.state === 'dead' ? (e.cause ?? 'missed-pulses').slice(0, 32) : null,
    l: clamp(e.load * 1000, 1000), m: clamp(e.smoothed * 1000, 1000), d: clamp(e.demand * 1000, 1e9), u: Math.round(e.cpu * 10) / 10,
    r: Math.round(e.rss / 2 ** 20), g: Math.round(e.lag), p: e.pid, b: e.born, a: e.parent, w: e.url, n: e.pulses,
    z: e.ts,
    k: [e.work.handled, e.work.inflight, e.work.queued, e.work.errors],
  };
  if (finding) row.e = finding;
  return row;
}

/** A finding that appeared, went or changed is news, said again like a change of state. */
function findingMoved(a: DigestRow, b: DigestRow): boolean {
  return a.e?.k !== b.e?.k || a.e?.x !== b.e?.x;
}

function differs(a: DigestRow, b: DigestRow): boolean {
  return (
    a.s !== b.s || a.q !== b.q || a.w !== b.w || a.p !== b.p ||
    Math.abs(a.l - b.l) >= BAND.l || Math.abs(a.m - b.m) >= BAND.m || Math.abs(a.d - b.d) >= BAND.d ||
    Math.abs(a.u - b.u) >= BAND.u || Math.abs(a.r - b.r) >= BAND.r || Math.abs(a.g - b.g) >= BAND.g ||
    a.k[1] !== b.k[1] || a.k[2] !== b.k[2] || findingMoved(a, b)
  );
}

export class HostDigest {
  readonly #o: HostDigestOptions;
  readonly #now: () => number;
  /** What each cell's row said when last sent, when, and how many more rounds it must be repeated. */
  readonly #sent = new Map<string, { row: DigestRow; at: number; repeat: number }>();
  #timer: PhasedTimer | undefined;
  #vanishTimer: NodeJS.Timeout | undefined;
  #fullNext = true;
  #round = 0;
  /** Digests and parts published, and rounds left out for calm (stats). */
  readonly stats = { digests: 0, parts: 0, rows: 0, bytes: 0, whole: 0, calm: 0 };

  constructor(options: HostDigestOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  start(): void {
    if (this.#timer) return;
    // (A newborn's census starts empty: it asks every grow for its whole host, privately
    // (whole()). Until issue 20 every birth made the next digest of every host whole, to
    // every cell: at 275 cells each birth cost the organism half a second of CPU.)
    // A quarter interval after the cells pulse (they all pulse at the same instant), so the
    // digest carries this interval's pulses and reaches every cell before its beat.
    this.#timer = everyPhase(this.#o.limits.pulseIntervalMs, PHASE.digest, () => this.round());
    this.#vanishTimer = setInterval(() => this.checkVanished(), Math.max(25, Math.floor(this.#o.limits.pulseIntervalMs / 4)));
    this.#vanishTimer.unref();
  }

  close(): void {
    this.#timer?.stop();
    clearInterval(this.#vanishTimer);
    this.#timer = undefined;
  }

  /** The next digest is whole (a newcomer asked: its census starts empty). At most one per interval, however often asked. */
  requestFull(): void {
    this.#fullNext = true;
  }

  /**
   * This host whole, as it stands, in parts: the private answer to one newcomer's ask (a
   * newborn cell's census starts empty). It changes nothing of the rounds everyone hears; its
   * `round` is 0, so a census counts no round from it.
   */
  whole(): DigestBody[] {
    const now = this.#now();
    const rows: DigestRow[] = [];
    let alive = 0;
    for (const e of this.#o.census.list()) {
      if (e.host !== this.#o.host) continue;
      if (e.state !== 'dead') alive++;
      rows.push(digestRow(e, e.state === 'dead' ? undefined : this.#o.watch?.finding(e.id)));
    }
    this.stats.whole++;
    return this.#parts(rows, { round: 0, full: true, alive }, now).map((p) => p.body);
  }

  /** `rows` as digest bodies of at most a hormone each, with this host's epoch, beacon and genome. */
  #parts(rows: DigestRow[], d: { round: number; full: boolean; alive: number }, now: number): { body: DigestBody; bytes: number }[] {
    const epoch = Math.floor(now / (this.#o.epochMs ?? 60_000));
    const beacon = this.#o.beacon(epoch);
    const genome = this.#o.watch?.holdsTo();
    const parts = split(rows, this.#o.limits.hormoneMaxBytes - OVERHEAD);
    return parts.map((part, i) => ({ body: { host: this.#o.host, round: d.round, part: i, parts: parts.length, full: d.full, alive: d.alive, epoch, beacon, ...(genome ? { genome } : {}), rows: part.rows }, bytes: part.bytes }));
  }

  /** A local cell whose process is gone is dead now (`vanished`), not after its missed pulses. */
  checkVanished(): void {
    for (const e of this.#o.census.living()) {
      if (e.host === this.#o.host && e.pid > 0 && !this.#o.exists(e)) this.#o.census.confirmDead(e.id, 'vanished');
    }
  }

  /** Publishes this interval's digest (in as many parts as it takes). */
  round(): void {
    const now = this.#now();
    const full = this.#fullNext;
    this.#fullNext = false;
    const refresh = this.#o.refreshMs ?? 60_000;
    // Refreshes ride on the stride's rounds, which go out anyway: at 100 cells a row falls due
    // every 0.6 s, and sent as they fell due they would make nearly every round news.
    const stride = onStride(now, this.#o.limits);
    this.#o.watch?.round(now);
    const local = this.#o.census.list().filter((e) => e.host === this.#o.host);
    const rows: DigestRow[] = [];
    let alive = 0;
    const present = new Set<string>();
    for (const e of local) {
      present.add(e.id);
      if (e.state !== 'dead') alive++;
      const row = digestRow(e, e.state === 'dead' ? undefined : this.#o.watch?.finding(e.id));
      const last = this.#sent.get(e.id);
      const changed = !last || differs(last.row, row);
      if (e.state === 'dead' && last?.row.s === 'dead' && last.repeat <= 0 && !full) continue; // said enough times
      if (full || changed || (last && (last.repeat > 0 || (stride && now - last.at >= refresh)))) {
        rows.push(row);
        const repeat = changed && (!last || last.row.s !== row.s || findingMoved(last.row, row)) ? DIGEST_REPEAT - 1 : last && !changed ? Math.max(0, last.repeat - 1) : 0;
        this.#sent.set(e.id, { row, at: now, repeat });
      }
    }
    for (const id of this.#sent.keys()) if (!present.has(id)) this.#sent.delete(id);
    // Calm: no row to send. Off the stride's intervals the round is left out (every census
    // forgives a stride of this host's silence, organism/kernel/census.ts), so an idle
    // organism's cells wake for a digest once a stride, not once an interval. News never waits.
    if (rows.length === 0 && !full && !stride) {
      this.stats.calm++;
      return;
    }
    for (const part of this.#parts(rows, { round: ++this.#round, full, alive }, now)) {
      this.#o.publish(part.body);
      this.stats.parts++;
      this.stats.bytes += part.bytes;
    }
    this.stats.digests++;
    this.stats.rows += rows.length;
  }
}

/** Rows in parts of at most `max` encoded bytes (at least one part, possibly empty). */
function split(rows: DigestRow[], max: number): { rows: DigestRow[]; bytes: number }[] {
  const parts: { rows: DigestRow[]; bytes: number }[] = [{ rows: [], bytes: 0 }];
  for (const row of rows) {
    const size = codec.pack(row).length + 2;
    let last = parts.at(-1)!;
    if (last.rows.length > 0 && (last.bytes + size > max || last.rows.length >= 1_000)) parts.push((last = { rows: [], bytes: 0 }));
    last.rows.push(row);
    last.bytes += size;
  }
  return parts;
}
