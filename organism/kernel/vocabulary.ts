/**
 * The hormone vocabulary: every kind a cell may publish, and a check of its body. A kind
 * not listed here is dropped on arrival. Bodies are checked for shape only; what a body
 * means is the receiving module's business.
 */

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
  /** CPU percent of one core (pidusage), over the interval before this pulse. */
  cpu: number;
  /**
   * CPU time the process has used since it started, ms (pidusage ctime): cells on the same
   * host check it, and `cpu` against its growth, against the real process (docs/immune.md).
   */
  cpuMs: number;
  /** Resident set size in bytes (pidusage). */
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

type Check = (b: Record<string, unknown>) => boolean;

const str = (v: unknown, max = 256): boolean => typeof v === 'string' && v.length <= max;
const nonNegInt = (v: unknown): boolean => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const finite = (v: unknown, lo: number, hi: number): boolean => typeof v === 'number' && Number.isFinite(v) && v >= lo && v <= hi;
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);

const DEATH_CAUSES: ReadonlySet<string> = new Set<DeathCause>(['shutdown', 'signal', 'apoptosis', 'toxin', 'error', 'drain-timeout']);

const CHECKS: Partial<Record<HormoneKind, Check>> = {
  pulse: (b) =>
    str(b.tissue, 32) &&
    str(b.host) &&
    nonNegInt(b.pid) &&
    (b.parent === null || str(b.parent, 64)) &&
    nonNegInt(b.born) &&
    (b.state === 'alive' || b.state === 'draining') &&
    finite(b.load, 0, 1) &&
    finite(b.demand, 0, 1e6) &&
    finite(b.cpu, 0, 100_000) &&
    finite(b.cpuMs, 0, 1e13) &&
    nonNegInt(b.rss) &&
    finite(b.lag, 0, 1e9) &&
    isObj(b.work) &&
    nonNegInt(b.work.handled) &&
    nonNegInt(b.work.inflight) &&
    nonNegInt(b.work.queued) &&
    nonNegInt(b.work.errors) &&
    str(b.genome, 64) &&
    str(b.code, 64) &&
    (b.url === null || str(b.url, 512)) &&
    nonNegInt(b.n),
  birth: (b) => nonNegInt(b.pid) && isObj(b.cert) && (b.url === null || str(b.url, 512)),
  death: (b) => nonNegInt(b.pid) && typeof b.cause === 'string' && DEATH_CAUSES.has(b.cause) && str(b.detail, 1024),
  shutdown: (b) => str(b.reason, 1024) && (b.host === undefined || str(b.host, 63)),
  decision: (b) =>
    str(b.tissue, 32) &&
    typeof b.action === 'string' && (DECISION_ACTIONS as readonly string[]).includes(b.action) &&
    Array.isArray(b.cells) && b.cells.length <= 256 && b.cells.every((c) => str(c, 64)) &&
    nonNegInt(b.count) && str(b.reason, 512) && nonNegInt(b.epoch) && readingsFit(b.readings),
  differentiate: (b) => str(b.tissue, 32) && str(b.by, 64) && nonNegInt(b.epoch),
  accuse: (b) => str(b.id, 64) && str(b.accused, 64) && isEvidence(b.kind) && str(b.detail, 512) && nonNegInt(b.at) && typeof b.lineage === 'boolean',
  vote: (b) => str(b.accusation, 64) && str(b.accused, 64) && typeof b.guilty === 'boolean' && str(b.detail, 512),
  verdict: (b) =>
    str(b.accusation, 64) && str(b.accused, 64) && isEvidence(b.kind) && typeof b.guilty === 'boolean' &&
    nonNegInt(b.votes) && nonNegInt(b.against) && nonNegInt(b.jury) && nonNegInt(b.needed) &&
    Array.isArray(b.condemned) && b.condemned.length <= 256 && b.condemned.every((c) => str(c, 64)),
  toxin: (b) => str(b.accusation, 64) && str(b.accused, 64) && str(b.cell, 64) && nonNegInt(b.pid) && str(b.host),
};

function isEvidence(v: unknown): v is EvidenceKind {
  return typeof v === 'string' && (EVIDENCE_KINDS as readonly string[]).includes(v);
}

function readingsFit(r: unknown): boolean {
  if (!isObj(r)) return false;
  const entries = Object.entries(r);
  return entries.length <= 32 && entries.every(([k, v]) => k.length <= 32 && (str(v, 128) || (typeof v === 'number' && Number.isFinite(v))));
}

export function isHormoneKind(kind: unknown): kind is HormoneKind {
  return typeof kind === 'string' && (HORMONE_KINDS as readonly string[]).includes(kind);
}

/** True when `body` has the shape its kind requires. Kinds without a check need an object body. */
export function bodyFits(kind: HormoneKind, body: unknown): boolean {
  if (!isObj(body)) return false;
  const check = CHECKS[kind];
  return check === undefined || check(body);
}
