/**
 * The hormone vocabulary: every kind a cell may publish, and a check of its body. A kind
 * not listed here is dropped on arrival. Bodies are checked for shape only; what a body
 * means is the receiving module's business.
 */
import { anyMap, bool, checkShape, finite, int, list, map, oneOf, opt, orNull, record, req, shapeTest, text, type AnyShape, type Check, type CheckContext, type Shape, type Test } from '../wire/schema.ts';

export const HORMONE_VERSION = 1;

export const HORMONE_KINDS = [
  'pulse',
  'birth',
  'death',
  'mitosis',
  'differentiate',
  'accuse',
  'vote',
  'verdict',
  'toxin',
  'shutdown',
  'decision',
  'digest',
] as const;

export type HormoneKind = (typeof HORMONE_KINDS)[number];

export type CellState = 'alive' | 'draining';

export interface WorkCounters {
  /** Requests handled since birth. */
  handled: number;
  /** Requests being handled now. */
  inflight: number;
  /** Requests waiting (the tissue's own queue depth). */
  queued: number;
  /** Requests that failed since birth. */
  errors: number;
}

export interface PulseBody {
  tissue: string;
  host: string;
  pid: number;
  parent: string | null;
  born: number;
  state: CellState;
  /** Load in [0,1]: the highest of CPU, event-loop lag and work pressure. */
  load: number;
  /**
   * The same pressure without the cap at 1, in cells' worth of work: mean concurrency over
   * the interval divided by capacity (Little's law), or CPU, or lag. A tissue needs about
   * Σ demand / target cells; a saturated cell's load hides how much more it is asked.
   */
  demand: number;
  /** CPU percent of one core, over the interval before this pulse. */
  cpu: number;
  /**
   * CPU time the process has used since it started, ms (user + system): cells on the same
   * host check it, and `cpu` against its growth, against the real process (docs/immune.md).
   */
  cpuMs: number;
  /** Resident set size in bytes. */
  rss: number;
  /** Event-loop delay of the cell's main thread, ms (worst tick delay over the last interval, or how long it has been blocked). */
  lag: number;
  work: WorkCounters;
  /** Genome hash the cell runs. */
  genome: string;
  /** Hash of the code the cell runs (cells/code-hash.ts); '' in the first pulse, sent before it is known. */
  code: string;
  /** URL of the cell's listener, if it listens. */
  url: string | null;
  /** Pulses sent so far, counting this one. */
  n: number;
}

export interface BirthBody {
  pid: number;
  /** The cell's lineage certificate (msgpack-able object). */
  cert: unknown;
  url: string | null;
}

export type DeathCause = 'shutdown' | 'signal' | 'apoptosis' | 'toxin' | 'error' | 'drain-timeout';
export const DEATH_CAUSES: readonly DeathCause[] = ['shutdown', 'signal', 'apoptosis', 'toxin', 'error', 'drain-timeout'];

export interface DeathBody {
  pid: number;
  cause: DeathCause;
  detail: string;
}

export interface ShutdownBody {
  reason: string;
  /** Only the cells of this host shut down (its grow is leaving a multi-host organism); absent: all. */
  host?: string;
}

/** What homeostasis decided. `divide` spawns, `differentiate` recruits a stem cell, `die` is apoptosis. */
export type DecisionAction = 'divide' | 'differentiate' | 'die' | 'refuse' | 'back-off' | 'recover';

export const DECISION_ACTIONS: readonly DecisionAction[] = ['divide', 'differentiate', 'die', 'refuse', 'back-off', 'recover'];

/** Numbers (or short words) a decision was made from: stress, demand, population, limits. */
export type Readings = Record<string, number | string>;

export interface DecisionBody {
  tissue: string;
  action: DecisionAction;
  /** Cells the decision makes, recruits or ends (empty for a refusal or a back-off). */
  cells: string[];
  /** How many cells it concerns (a refusal names how many were refused). */
  count: number;
  /** Why, in words. */
  reason: string;
  /** Epoch of the tissue's homeostasis record this decision wrote. */
  epoch: number;
  readings: Readings;
}

/** A stem cell announces it now serves `tissue`, recruited by `by`. */
export interface DifferentiateBody {
  tissue: string;
  by: string;
  epoch: number;
}

/** What a cell can be accused of (docs/immune.md). Missed pulses are never evidence. */
export type EvidenceKind = 'flood' | 'forgery' | 'liar' | 'genome' | 'cancer';
export const EVIDENCE_KINDS: readonly EvidenceKind[] = ['flood', 'forgery', 'liar', 'genome', 'cancer'];

/** A cell's evidence against `accused` passed its threshold: the jury is called. */
export interface AccuseBody {
  /** The accusation's id (the accuser's choice, unique). */
  id: string;
  accused: string;
  kind: EvidenceKind;
  /** What the accuser saw, in words and numbers (for people and the dashboard). */
  detail: string;
  /** When the accusation was made (ms since the epoch): who may vote is fixed at this time. */
  at: number;
  /** Whether the accused's descendants are condemned with it (cancer: the lineage is the disease). */
  lineage: boolean;
  /**
   * The accused's panel as the accuser drew it (organism/kernel/sortition.ts): the only cells
   * whose votes count. Each cell checks it against its own draw before it opens the trial.
   */
  jury?: string[];
  /** The beacon epoch the panel was drawn with. */
  epoch?: number;
}

/** One juror's vote, from its own evidence. */
export interface VoteBody {
  accusation: string;
  accused: string;
  guilty: boolean;
  detail: string;
}

/** What the accuser's tally decided (every cell acts on its own tally; this is the record). */
export interface VerdictBody {
  accusation: string;
  accused: string;
  kind: EvidenceKind;
  guilty: boolean;
  /** Guilty and innocent votes counted, the jury's size and the votes a verdict needed. */
  votes: number;
  against: number;
  jury: number;
  needed: number;
  /** The cells condemned (the accused, and for cancer its descendants). */
  condemned: string[];
}

/** A cell on the condemned's host killed it. */
export interface ToxinBody {
  accusation: string;
  accused: string;
  /** The cell killed (the accused or one of its descendants), its pid and host. */
  cell: string;
  pid: number;
  host: string;
}

/** The body each kind carries (mitosis: any map). */
/**
 * One row of a host digest: what a host's grow knows of one of its cells, from the pulses it
 * verified (organism/grow/host-digest.ts). Short keys: a digest carries a host's whole
 * population, a row is ≈ 90 bytes.
 */
export interface DigestRow {
  /** Cell id. */
  i: string;
  /** Tissue it serves now (a stem cell's changes when it differentiates). (`t` is reserved by the schema for frame tags.) */
  q: string;
  /** Life state in grow's census. */
  s: 'alive' | 'draining' | 'suspect' | 'dead';
  /** Why it is dead (a death cause, `missed-pulses`, `vanished`, `toxin`), else null. */
  c: string | null;
  /** Load, smoothed load (the tissue's half-life, in pulse time), uncapped demand: thousandths. */
  l: number;
  m: number;
  d: number;
  /** CPU percent, RSS (MiB), event-loop lag (ms). */
  u: number;
  r: number;
  g: number;
  /** pid, birth time, parent (null for a root-made cell), url (receivers, dashboard). */
  p: number;
  b: number;
  a: string | null;
  w: string | null;
  /** Pulses so far (the pulse's `n`) and the send time of the last one (ms since the epoch). */
  n: number;
  z: number;
  /** Work counters: handled, inflight, queued, errors. */
  k: number[];
  /**
   * What grow found against the cell in its pulses and its process, past the immune
   * thresholds (organism/grow/host-watch.ts): flooding, another genome or code, a lie about
   * its metabolism. Absent while there is nothing. The cell's watchers accuse on it.
   */
  e?: RowFinding;
}

/** A finding in a digest row: its kind and what was seen. */
export interface RowFinding {
  k: 'flood' | 'genome' | 'liar';
  x: string;
}

/**
 * The dead band of a digest row: changes smaller than these are not news (load, smoothed
 * load and demand in thousandths, CPU in percent points, RSS in MiB, lag in ms). grow sends
 * a row only past one (or to refresh it), and a census re-plans only past one.
 */
export const DIGEST_BAND = { l: 50, m: 20, d: 50, u: 10, r: 16, g: 50 } as const;

/**
 * Digests running in which a cell's changed state (a death above all) is said again, so
 * that losing fewer than this many in a row hides nothing (organism/grow/host-digest.ts;
 * the census relies on it to give back what a host's silence took, organism/kernel/census.ts).
 */
export const DIGEST_REPEAT = 3;

/**
 * A host's digest: every `limits.pulseIntervalMs` each host's grow publishes, as `root`, the
 * cells of its host whose row changed beyond a dead band (or all of them: `full`), split in
 * parts that fit `limits.hormoneMaxBytes`. Its arrival says the host's other cells still
 * live. `beacon` is the organism's public random value for `epoch` (the sortition of
 * watchers and juries, docs/immune.md).
 */
export interface DigestBody {
  host: string;
  /** Digest number of this host's grow; all parts of one digest share it. */
  round: number;
  part: number;
  parts: number;
  full: boolean;
  /** Cells of this host alive in grow's census (for the census-agreement check). */
  alive: number;
  epoch: number;
  beacon: string;
  /**
   * `<genome hash>/<code hash>` the host's grow runs and holds its cells to (their pulses
   * must match it); another host's grow that hears a different one says so (a half-upgraded
   * cluster). Absent until grow has hashed its code.
   */
  genome?: string;
  rows: DigestRow[];
}

export interface HormoneBodies {
  pulse: PulseBody;
  digest: DigestBody;
  birth: BirthBody;
  death: DeathBody;
  shutdown: ShutdownBody;
  decision: DecisionBody;
  differentiate: DifferentiateBody;
  accuse: AccuseBody;
  vote: VoteBody;
  verdict: VerdictBody;
  toxin: ToxinBody;
  mitosis: Record<string, unknown>;
}

// ---- body shapes (organism/wire/schema.ts) ---------------------------------------------------

/**
 * The gate drops a body that does not fit (reason `badBody`); a sender refuses to seal one
 * (HORMONE_ERR_BODY, naming the field). Bodies are open: a field a kind does not list is let
 * through, as a newer cell may send it, and the receiver reads only what it knows.
 */
const BODY: CheckContext = Object.freeze({ code: 'HORMONE_ERR_BODY', limits: {}, limitPrefix: '', open: true });

const count = int(0);
const id = text(0, 64);
const words = (max: number) => req(text(0, max));
const url = req(orNull(text(0, 512)));
const evidence = req(oneOf(...EVIDENCE_KINDS));
const cells = req(list(id, 0, 256));
/** A decision's readings: at most 32, each named in at most 32 characters, a short word or a finite number. */
const reading: Check<number | string> = (value, at, ctx) => (typeof value === 'number' ? finite(-Number.MAX_VALUE, Number.MAX_VALUE)(value, at, ctx) : text(0, 128)(value, at, ctx));
const readings = record<number | string>(text(0, 32), Object.assign(reading, { test: (v: unknown) => (typeof v === 'number' ? Number.isFinite(v) : typeof v === 'string' && v.length <= 128) }), 32);

const SHAPES: { readonly [K in HormoneKind]?: Shape<HormoneBodies[K]> } = {
  pulse: {
    tissue: words(32),
    host: words(256),
    pid: req(count),
    parent: req(orNull(id)),
    born: req(count),
    state: req(oneOf<CellState>('alive', 'draining')),
    load: req(finite(0, 1)),
    demand: req(finite(0, 1e6)),
    cpu: req(finite(0, 100_000)),
    cpuMs: req(finite(0, 1e13)),
    rss: req(count),
    lag: req(finite(0, 1e9)),
    work: req(map<WorkCounters>({ handled: req(count), inflight: req(count), queued: req(count), errors: req(count) })),
    genome: words(64),
    code: words(64),
    url,
    n: req(count),
  },
  digest: {
    host: words(256),
    round: req(count),
    part: req(count),
    parts: req(int(1, 1_000)),
    full: req(bool),
    alive: req(count),
    epoch: req(count),
    beacon: words(64),
    genome: opt(text(0, 64)),
    rows: req(list(map<DigestRow>({
      i: words(64), q: words(32), s: req(oneOf('alive', 'draining', 'suspect', 'dead')), c: req(orNull(text(0, 32))),
      l: req(int(0, 1_000)), m: req(int(0, 1_000)), d: req(int(0, 1e9)), u: req(finite(0, 100_000)), r: req(count), g: req(finite(0, 1e9)),
      p: req(count), b: req(count), a: req(orNull(id)), w: url, n: req(count), z: req(count),
      k: req(list(count, 4, 4)),
      e: opt(map<RowFinding>({ k: req(oneOf('flood', 'genome', 'liar')), x: words(256) })),
    }), 0, 1_000)),
  },
  birth: { pid: req(count), cert: req(anyMap), url },
  death: { pid: req(count), cause: req(oneOf(...DEATH_CAUSES)), detail: words(1024) },
  shutdown: { reason: words(1024), host: opt(text(0, 63)) },
  decision: { tissue: words(32), action: req(oneOf(...DECISION_ACTIONS)), cells, count: req(count), reason: words(512), epoch: req(count), readings: req(readings) },
  differentiate: { tissue: words(32), by: words(64), epoch: req(count) },
  accuse: { id: words(64), accused: words(64), kind: evidence, detail: words(512), at: req(count), lineage: req(bool), jury: opt(list(id, 0, 64)), epoch: opt(count) },
  vote: { accusation: words(64), accused: words(64), guilty: req(bool), detail: words(512) },
  verdict: {
    accusation: words(64),
    accused: words(64),
    kind: evidence,
    guilty: req(bool),
    votes: req(count),
    against: req(count),
    jury: req(count),
    needed: req(count),
    condemned: cells,
  },
  toxin: { accusation: words(64), accused: words(64), cell: words(64), pid: req(count), host: words(256) },
};

/** Each kind's body test, made once: bodies are checked on every pulse of every cell. */
const TESTS: { readonly [K in HormoneKind]: Test } = Object.fromEntries(
  HORMONE_KINDS.map((kind) => {
    const shape = SHAPES[kind];
    return [kind, shape === undefined ? anyMap.test! : shapeTest(shape as AnyShape)];
  }),
) as { readonly [K in HormoneKind]: Test };

export function isHormoneKind(kind: unknown): kind is HormoneKind {
  return typeof kind === 'string' && (HORMONE_KINDS as readonly string[]).includes(kind);
}

/** True when `body` has the shape its kind requires. Kinds without a shape need a map body. */
export function bodyFits(kind: HormoneKind, body: unknown): boolean {
  return TESTS[kind](body, BODY);
}

/** Checks a body against its kind's shape; throws HORMONE_ERR_BODY naming the field, the expectation and what was received. */
export function checkBody(kind: HormoneKind, body: unknown): void {
  const shape = SHAPES[kind];
  if (shape === undefined) anyMap(body, kind, BODY);
  else checkShape(body, shape as AnyShape, kind, BODY);
}
