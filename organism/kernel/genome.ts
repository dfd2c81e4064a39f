/**
 * The genome: the organism's typed configuration. Built once from defaults, then an
 * optional JSON file, then CLI overrides; validated with messages that name the field,
 * the expectation and the value received; then deep-frozen. Every cell gets the same
 * frozen genome in its birth packet and reports its hash, so a cell running another
 * genome is visible.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { CellularError } from '../wire/errors.ts';

export interface TissueGene {
  /** Tissue module: a built-in name (`stem`, `echo`) or a path to a compiled `.js` file. */
  module: string;
  /** Fewest living cells of this tissue. @default 1 */
  min: number;
  /** Most living cells of this tissue. @default 4 */
  max: number;
  /** Stress above which the tissue grows, in [0,1]. @default 0.75 */
  high: number;
  /** Stress below which, for `idleMs`, the tissue shrinks, in [0,1]. @default 0.2 */
  low: number;
  /**
   * Load each cell should carry after growth, in (low, high): a tissue grows to
   * ceil(demand / target) cells. Keeping it below `high` and a shrink from leaving any
   * cell above it is the hysteresis that stops divide/die oscillation. @default 0.6
   */
  target: number;
  /** How long a cell must stay below `low` before apoptosis. @default 30000 */
  idleMs: number;
  /** Half-life of the decayed stress mean. @default 2000 */
  halfLifeMs: number;
  /**
   * Fewest cells of this tissue on every live host (a host with a living cell of the
   * organism), within `max`: a host that joins brings them, and a host short of them gets
   * them placed there. @default 0 (receivers: 1, so every host has a front door)
   */
  perHost: number;
}

export interface Limits {
  /** Most living cells on one host, all tissues together. @default 32 */
  cellsPerHost: number;
  /** Most divisions per minute, organism-wide. @default 60 */
  mitosisPerMinute: number;
  /** Most resident memory of all living cells on one host, MiB; a division that would pass it is refused. @default 4096 */
  rssPerHostMb: number;
  /** Replication budget of a cell made by the root key; a child gets less than its parent had (Hayflick limit). @default 16 */
  lineageBudget: number;
  /** Whether cells run homeostasis (mitosis, apoptosis, regrowth). @default true */
  homeostasis: boolean;
  /** First wait before regrowing a tissue whose new cells keep dying young; doubles per failure. @default 500 */
  regrowBackoffMs: number;
  /** Cap on that wait. @default 30000 */
  regrowBackoffMaxMs: number;
  /** A cell that dies (or never pulses) this soon after it was made counts as a failed birth. @default 1000 */
  crashWindowMs: number;
  /** How long a cell being made may take to pulse before it counts as failed. @default 5000 */
  joinTimeoutMs: number;
  /** Largest encoded hormone accepted or sent, in bytes. @default 8192 */
  hormoneMaxBytes: number;
  /** Time between two pulses of one cell. @default 500 */
  pulseIntervalMs: number;
  /** Missed pulses before a cell is `suspect`. @default 3 */
  suspectAfterPulses: number;
  /** Missed pulses before a cell is `dead`. @default 6 */
  deadAfterPulses: number;
  /** Hormones older (or further in the future) than this are stale. @default 30000 */
  hormoneMaxAgeMs: number;
  /**
   * How far out of order a sender's hormones may arrive and still be accepted once each
   * (its two threads publish over two connections). Sequences count microseconds, so this
   * is a span of send time. @default 2000
   */
  replayWindowMs: number;
  /** How long a cell may take to drain before it exits anyway. @default 5000 */
  drainTimeoutMs: number;
  /** How long grow/stop wait for the census to empty before killing stragglers. @default 10000 */
  shutdownTimeoutMs: number;
  /** How long a dead cell stays listed in the census. @default 10000 */
  deadRetentionMs: number;
  /** How long a cell stays without its broker before it gives up and exits (cause `error`). @default 15000 */
  brokerLossMs: number;
}

export interface BrokerGene {
  /** Address the private nats-server binds. @default '127.0.0.1' */
  host: string;
  /** Client port; 0 picks a free one (never 4222). @default 0 */
  port: number;
  /** Monitoring port; 0 picks a free one. @default 0 */
  monitorPort: number;
  /** Largest message the private server accepts. @default 1048576 */
  maxPayload: number;
  /**
   * JetStream replicas of every stream and bucket: 1, 3, or 0 = 3 when the cluster can place
   * three (at least three JetStream servers up), else 1. @default 0
   */
  replicas: 0 | 1 | 3;
}

/** The messenger: receivers' sockets and limits, accounts, sessions and message storage. */
export interface MessengerGene {
  /** Address receivers listen on. @default '127.0.0.1' */
  host: string;
  /** Lowest port of the range each receiver takes its own port from. @default 8101 */
  portMin: number;
  /** Highest port of that range. @default 8199 */
  portMax: number;
  /** The front door: one receiver at a time holds it; 0 disables it. @default 8080 */
  frontPort: number;
  /**
   * Origins allowed to open a WebSocket, comma-separated (`https://chat.example.org`);
   * empty allows the receivers' own origins only. A request without an Origin header
   * (a non-browser client) is allowed. @default ''
   */
  origins: string;
  /**
   * The one URL receivers give clients for failover (`welcome`, `receivers`, `moved`, GET
   * /receivers) instead of their own: the front door in front of them (nginx,
   * docs/deployment.md), when their own addresses are not reachable from browsers. Empty:
   * their own URLs. @default ''
   */
  publicUrl: string;
  /** Largest client frame, bytes; a larger one is refused with PROTO_ERR_TOO_LARGE. @default 65536 */
  maxFrameBytes: number;
  /** Largest message body (ciphertext), bytes. @default 32768 */
  maxBodyBytes: number;
  /** Frames per second one connection may send (token bucket, burst of the same size). @default 100 */
  framesPerSecond: number;
  /** Open sockets one IP address may hold on one receiver. @default 1024 */
  connectionsPerIp: number;
  /**
   * Outbound bytes a client may leave unread. Delivery pauses at half of it; a push that
   * would pass it cuts the client off (close 4001). @default 1048576
   */
  maxPendingBytes: number;
  /** How long delivery waits for a client to read its backlog before cutting it off (close 4001). @default 10000 */
  slowClientMs: number;
  /**
   * Client acks within this many ms share one write of the user's cursor. Longer means
   * fewer KV writes and more messages sent again after a failover. @default 50
   */
  cursorFlushMs: number;
  /**
   * Messages one receiver may have on their way into JetStream at once; further sends
   * wait their turn (in order), so a send flood leaves the broker room to deliver. @default 8
   */
  storeInflight: number;
  /** Most members (copies) in one group send. @default 64 */
  groupMaxMembers: number;
  /** Most messages in one history page, and most pushed to a client before it acks. @default 256 */
  pageMax: number;
  /** scrypt cost for new password hashes, log2 N (17: N = 131072, 128 MiB per hash). @default 17 */
  scryptLogN: number;
  /** scrypt block size r. @default 8 */
  scryptR: number;
  /** scrypt parallelism p. @default 1 */
  scryptP: number;
  /** Failed logins one username may take per window, organism-wide. @default 10 */
  loginAttemptsPerUser: number;
  /** Logins and registrations (of any user) one IP address may try per window, organism-wide. @default 50 */
  loginAttemptsPerIp: number;
  /** The rate-limit window, ms. @default 60000 */
  loginWindowMs: number;
  /** How long a session token lives, ms (bucket TTL). @default 604800000 */
  sessionTtlMs: number;
  /** How long a stored message is kept, ms. @default 2592000000 */
  messageRetentionMs: number;
  /** Window within which a resent message id is stored only once, ms. @default 600000 */
  dedupeWindowMs: number;
  /**
   * How long a receiver keeps retrying a worker request that found no worker at all (one
   * being regrown), ms. Safe to retry: "no responders" means no worker received it. @default 3000
   */
  workerWaitMs: number;
}

/**
 * The immune system: what counts as misbehaviour, and how the jury works (docs/immune.md).
 * Every threshold is evidence a cell gathers itself; missed pulses are never evidence.
 */
export interface ImmuneGene {
  /** Whether cells gather evidence, accuse, vote and kill. @default true */
  enabled: boolean;
  /** Hormones per second one sender may send, averaged over floodWindowMs, before it is flooding. @default 100 */
  floodPerSecond: number;
  /** The window of that average. @default 2000 */
  floodWindowMs: number;
  /** Forged traffic (signed hormones with a bad body, votes or toxins that break the rules) a sender may send before it is accused. @default 3 */
  forgeriesMax: number;
  /** How often cells check the claimed CPU and RSS of peers on their host against the real process. @default 500 */
  checkIntervalMs: number;
  /** A peer's claimed CPU time may differ from its process's real one by this much, ms (beyond what it could use since the pulse). @default 500 */
  liarSlackMs: number;
  /** A pulse's claimed CPU percent may differ from what its own CPU time grew by since the previous pulse by this many points. @default 50 */
  liarCpuPoints: number;
  /** Claimed RSS may differ from the real one by this factor (and 64 MiB). @default 4 */
  liarRssFactor: number;
  /** Consecutive failed checks before a peer is lying. @default 2 */
  liarChecks: number;
  /** Pulses with a genome or code hash other than ours before a peer is tampered. @default 2 */
  genomeMismatches: number;
  /** How long the jury has to vote; a trial without 2/3 guilty by then is an acquittal. @default 3000 */
  voteDeadlineMs: number;
}

/** The dashboard cell's page, its live feed, its controls and the flight recorder (docs/dashboard.md). */
export interface DashboardGene {
  /** Address the dashboard listens on. @default '127.0.0.1' */
  host: string;
  /** Its port; when taken, it listens on a free one (shown in the census and by grow). 0 always picks a free one. @default 8090 */
  port: number;
  /** How often the page gets the census and new events. @default 500 */
  pushIntervalMs: number;
  /** Events (births, deaths, decisions, trials…) the cell keeps in memory and sends a new page. @default 2000 */
  eventsMax: number;
  /** Points of each time series kept (one per second). @default 900 */
  seriesPoints: number;
  /** Pages connected at once; more are refused. @default 16 */
  clientsMax: number;
  /** Largest frame a page may send, bytes. @default 4096 */
  frameMaxBytes: number;
  /** Controls one page may send per minute. @default 30 */
  controlsPerMinute: number;
  /** Longest load a control may apply, seconds. @default 120 */
  loadMaxSeconds: number;
  /** Highest request rate a load control may apply, per second. @default 2000 */
  loadMaxRate: number;
  /** How long the flight recorder keeps hormones and census frames, ms. @default 1800000 */
  recorderMaxAgeMs: number;
  /** The flight recorder's size cap (oldest dropped first), bytes. @default 67108864 */
  recorderMaxBytes: number;
  /** How often the dashboard records a census frame into the flight recorder, ms. @default 1000 */
  frameIntervalMs: number;
}

export interface Genome {
  /** Genome format version. @default 1 */
  version: 1;
  tissues: Record<string, TissueGene>;
  limits: Limits;
  broker: BrokerGene;
  messenger: MessengerGene;
  immune: ImmuneGene;
  dashboard: DashboardGene;
}

export const TISSUE_DEFAULTS: Readonly<TissueGene> = Object.freeze({
  module: '',
  min: 1,
  max: 4,
  high: 0.75,
  low: 0.2,
  target: 0.6,
  idleMs: 30_000,
  halfLifeMs: 2_000,
  perHost: 0,
});

export function defaultGenome(): Genome {
  return {
    version: 1,
    tissues: {
      stem: { ...TISSUE_DEFAULTS, module: 'stem', min: 2, max: 8 },
      echo: { ...TISSUE_DEFAULTS, module: 'echo', min: 1, max: 4 },
      receiver: { ...TISSUE_DEFAULTS, module: 'receiver', min: 1, max: 4, perHost: 1 },
      worker: { ...TISSUE_DEFAULTS, module: 'worker', min: 1, max: 4 },
      // A singleton: regrown when it dies, never divided.
      dashboard: { ...TISSUE_DEFAULTS, module: 'dashboard', min: 1, max: 1 },
    },
    limits: {
      cellsPerHost: 32,
      mitosisPerMinute: 60,
      rssPerHostMb: 4096,
      lineageBudget: 16,
      homeostasis: true,
      regrowBackoffMs: 500,
      regrowBackoffMaxMs: 30_000,
      crashWindowMs: 1_000,
      joinTimeoutMs: 5_000,
      hormoneMaxBytes: 8192,
      pulseIntervalMs: 500,
      suspectAfterPulses: 3,
      deadAfterPulses: 6,
      hormoneMaxAgeMs: 30_000,
      replayWindowMs: 2_000,
      drainTimeoutMs: 5_000,
      shutdownTimeoutMs: 10_000,
      deadRetentionMs: 10_000,
      brokerLossMs: 15_000,
    },
    broker: { host: '127.0.0.1', port: 0, monitorPort: 0, maxPayload: 1_048_576, replicas: 0 },
    messenger: {
      host: '127.0.0.1',
      portMin: 8101,
      portMax: 8199,
      frontPort: 8080,
      origins: '',
      publicUrl: '',
      maxFrameBytes: 65_536,
      maxBodyBytes: 32_768,
      framesPerSecond: 100,
      connectionsPerIp: 1024,
      maxPendingBytes: 1_048_576,
      slowClientMs: 10_000,
      cursorFlushMs: 50,
      storeInflight: 8,
      groupMaxMembers: 64,
      pageMax: 256,
      scryptLogN: 17,
      scryptR: 8,
      scryptP: 1,
      loginAttemptsPerUser: 10,
      loginAttemptsPerIp: 50,
      loginWindowMs: 60_000,
      sessionTtlMs: 7 * 24 * 3_600_000,
      messageRetentionMs: 30 * 24 * 3_600_000,
      dedupeWindowMs: 600_000,
      workerWaitMs: 3_000,
    },
    immune: {
      enabled: true,
      floodPerSecond: 100,
      floodWindowMs: 2_000,
      forgeriesMax: 3,
      checkIntervalMs: 500,
      liarSlackMs: 500,
      liarCpuPoints: 50,
      liarRssFactor: 4,
      liarChecks: 2,
      genomeMismatches: 2,
      voteDeadlineMs: 3_000,
    },
    dashboard: {
      host: '127.0.0.1',
      port: 8090,
      pushIntervalMs: 500,
      eventsMax: 2_000,
      seriesPoints: 900,
      clientsMax: 16,
      frameMaxBytes: 4_096,
      controlsPerMinute: 30,
      loadMaxSeconds: 120,
      loadMaxRate: 2_000,
      recorderMaxAgeMs: 30 * 60_000,
      recorderMaxBytes: 64 * 1024 * 1024,
      frameIntervalMs: 1_000,
    },
  };
}

type Rule = { kind: 'boolean' } | { kind: 'int'; min: number; max: number } | { kind: 'number'; min: number; max: number } | { kind: 'string'; pattern?: RegExp; hint?: string; empty?: boolean };

const LIMIT_RULES: Record<keyof Limits, Rule> = {
  cellsPerHost: { kind: 'int', min: 1, max: 10_000 },
  mitosisPerMinute: { kind: 'int', min: 0, max: 100_000 },
  rssPerHostMb: { kind: 'int', min: 64, max: 16_777_216 },
  lineageBudget: { kind: 'int', min: 0, max: 1_000_000 },
  homeostasis: { kind: 'boolean' },
  regrowBackoffMs: { kind: 'int', min: 10, max: 3_600_000 },
  regrowBackoffMaxMs: { kind: 'int', min: 10, max: 86_400_000 },
  crashWindowMs: { kind: 'int', min: 0, max: 3_600_000 },
  joinTimeoutMs: { kind: 'int', min: 100, max: 600_000 },
  hormoneMaxBytes: { kind: 'int', min: 512, max: 1_048_576 },
  pulseIntervalMs: { kind: 'int', min: 50, max: 60_000 },
  suspectAfterPulses: { kind: 'int', min: 1, max: 1_000 },
  deadAfterPulses: { kind: 'int', min: 2, max: 1_000 },
  hormoneMaxAgeMs: { kind: 'int', min: 1_000, max: 3_600_000 },
  replayWindowMs: { kind: 'int', min: 10, max: 600_000 },
  drainTimeoutMs: { kind: 'int', min: 0, max: 600_000 },
  shutdownTimeoutMs: { kind: 'int', min: 100, max: 3_600_000 },
  deadRetentionMs: { kind: 'int', min: 0, max: 3_600_000 },
  brokerLossMs: { kind: 'int', min: 500, max: 86_400_000 },
};

const TISSUE_RULES: Record<keyof TissueGene, Rule> = {
  module: { kind: 'string', pattern: /^\S+$/, hint: 'a built-in tissue name or a path to a .js file' },
  min: { kind: 'int', min: 0, max: 10_000 },
  max: { kind: 'int', min: 1, max: 10_000 },
  high: { kind: 'number', min: 0, max: 1 },
  low: { kind: 'number', min: 0, max: 1 },
  target: { kind: 'number', min: 0, max: 1 },
  idleMs: { kind: 'int', min: 0, max: 86_400_000 },
  halfLifeMs: { kind: 'int', min: 1, max: 3_600_000 },
  perHost: { kind: 'int', min: 0, max: 10_000 },
};

const BROKER_RULES: Record<keyof BrokerGene, Rule> = {
  host: { kind: 'string', pattern: /^[0-9a-zA-Z.:\-[\]]+$/, hint: 'an IP address or host name' },
  port: { kind: 'int', min: 0, max: 65_535 },
  monitorPort: { kind: 'int', min: 0, max: 65_535 },
  maxPayload: { kind: 'int', min: 1024, max: 67_108_864 },
  replicas: { kind: 'int', min: 0, max: 3 },
};

const MESSENGER_RULES: Record<keyof MessengerGene, Rule> = {
  host: { kind: 'string', pattern: /^[0-9a-zA-Z.:\-[\]]+$/, hint: 'an IP address or host name' },
  portMin: { kind: 'int', min: 1, max: 65_535 },
  portMax: { kind: 'int', min: 1, max: 65_535 },
  frontPort: { kind: 'int', min: 0, max: 65_535 },
  origins: { kind: 'string', pattern: /^(https?:\/\/[^\s,/]+(,https?:\/\/[^\s,/]+)*)?$/, hint: 'a comma-separated list of origins such as https://chat.example.org, or empty', empty: true },
  publicUrl: { kind: 'string', pattern: /^(https?:\/\/[^\s,/"'<>]+)?$/, hint: 'a base URL such as https://chat.example.org (scheme and host[:port], no path), or empty', empty: true },
  maxFrameBytes: { kind: 'int', min: 1024, max: 16_777_216 },
  maxBodyBytes: { kind: 'int', min: 64, max: 16_777_216 },
  framesPerSecond: { kind: 'int', min: 1, max: 1_000_000 },
  connectionsPerIp: { kind: 'int', min: 1, max: 1_000_000 },
  maxPendingBytes: { kind: 'int', min: 1024, max: 1_073_741_824 },
  slowClientMs: { kind: 'int', min: 100, max: 3_600_000 },
  cursorFlushMs: { kind: 'int', min: 0, max: 60_000 },
  storeInflight: { kind: 'int', min: 1, max: 100_000 },
  groupMaxMembers: { kind: 'int', min: 2, max: 10_000 },
  pageMax: { kind: 'int', min: 1, max: 10_000 },
  scryptLogN: { kind: 'int', min: 10, max: 22 },
  scryptR: { kind: 'int', min: 1, max: 32 },
  scryptP: { kind: 'int', min: 1, max: 16 },
  loginAttemptsPerUser: { kind: 'int', min: 1, max: 1_000_000 },
  loginAttemptsPerIp: { kind: 'int', min: 1, max: 1_000_000 },
  loginWindowMs: { kind: 'int', min: 1_000, max: 86_400_000 },
  sessionTtlMs: { kind: 'int', min: 10_000, max: 365 * 86_400_000 },
  messageRetentionMs: { kind: 'int', min: 60_000, max: 3_650 * 86_400_000 },
  dedupeWindowMs: { kind: 'int', min: 1_000, max: 86_400_000 },
  workerWaitMs: { kind: 'int', min: 0, max: 60_000 },
};

const IMMUNE_RULES: Record<keyof ImmuneGene, Rule> = {
  enabled: { kind: 'boolean' },
  floodPerSecond: { kind: 'int', min: 1, max: 1_000_000 },
  floodWindowMs: { kind: 'int', min: 100, max: 600_000 },
  forgeriesMax: { kind: 'int', min: 1, max: 1_000_000 },
  checkIntervalMs: { kind: 'int', min: 50, max: 600_000 },
  liarSlackMs: { kind: 'int', min: 10, max: 600_000 },
  liarCpuPoints: { kind: 'number', min: 1, max: 100_000 },
  liarRssFactor: { kind: 'number', min: 1.1, max: 1_000 },
  liarChecks: { kind: 'int', min: 1, max: 1_000 },
  genomeMismatches: { kind: 'int', min: 1, max: 1_000 },
  voteDeadlineMs: { kind: 'int', min: 100, max: 600_000 },
};

const DASHBOARD_RULES: Record<keyof DashboardGene, Rule> = {
  host: { kind: 'string', pattern: /^[0-9a-zA-Z.:\-[\]]+$/, hint: 'an IP address or host name' },
  port: { kind: 'int', min: 0, max: 65_535 },
  pushIntervalMs: { kind: 'int', min: 50, max: 60_000 },
  eventsMax: { kind: 'int', min: 10, max: 1_000_000 },
  seriesPoints: { kind: 'int', min: 10, max: 100_000 },
  clientsMax: { kind: 'int', min: 1, max: 10_000 },
  frameMaxBytes: { kind: 'int', min: 256, max: 1_048_576 },
  controlsPerMinute: { kind: 'int', min: 1, max: 100_000 },
  loadMaxSeconds: { kind: 'int', min: 1, max: 86_400 },
  loadMaxRate: { kind: 'int', min: 1, max: 1_000_000 },
  recorderMaxAgeMs: { kind: 'int', min: 60_000, max: 30 * 86_400_000 },
  recorderMaxBytes: { kind: 'int', min: 1_048_576, max: 1_099_511_627_776 },
  frameIntervalMs: { kind: 'int', min: 100, max: 60_000 },
};

/** Tissue names become NATS subject tokens and file names, so keep them plain. */
const TISSUE_NAME = /^[a-z][a-z0-9-]{0,31}$/;

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value);
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}

function invalid(field: string, expected: string, value: unknown): CellularError {
  return new CellularError('GENOME_ERR_INVALID', `genome.${field} must be ${expected}, received ${describe(value)}`);
}

function checkRule(field: string, rule: Rule, value: unknown): void {
  switch (rule.kind) {
    case 'boolean':
      if (typeof value !== 'boolean') throw invalid(field, 'true or false', value);
      return;
    case 'int':
      if (typeof value !== 'number' || !Number.isInteger(value) || value < rule.min || value > rule.max) {
        throw invalid(field, `an integer from ${rule.min} to ${rule.max}`, value);
      }
      return;
    case 'number':
      if (typeof value !== 'number' || !Number.isFinite(value) || value < rule.min || value > rule.max) {
        throw invalid(field, `a number from ${rule.min} to ${rule.max}`, value);
      }
      return;
    case 'string':
      if (typeof value !== 'string' || (value.length === 0 && !rule.empty) || (rule.pattern && !rule.pattern.test(value))) {
        throw invalid(field, rule.hint ?? 'a non-empty string', value);
      }
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkSection(prefix: string, rules: Record<string, Rule>, value: unknown): void {
  if (!isRecord(value)) throw invalid(prefix, 'an object', value);
  for (const key of Object.keys(value)) {
    if (!Object.hasOwn(rules, key)) {
      throw new CellularError('GENOME_ERR_UNKNOWN_FIELD', `genome.${prefix}.${key} is not a genome field; known fields: ${Object.keys(rules).join(', ')}`);
    }
  }
  for (const [key, rule] of Object.entries(rules)) checkRule(`${prefix}.${key}`, rule, value[key]);
}

/** Validates a complete genome and returns it deep-frozen. */
export function validateGenome(value: unknown): Readonly<Genome> {
  if (!isRecord(value)) throw invalid('', 'an object', value);
  for (const key of Object.keys(value)) {
    if (!['version', 'tissues', 'limits', 'broker', 'messenger', 'immune', 'dashboard'].includes(key)) {
      throw new CellularError('GENOME_ERR_UNKNOWN_FIELD', `genome.${key} is not a genome field; known fields: version, tissues, limits, broker, messenger, immune, dashboard`);
    }
  }
  if (value.version !== 1) throw invalid('version', 'the number 1', value.version);
  checkSection('limits', LIMIT_RULES, value.limits);
  checkSection('broker', BROKER_RULES, value.broker);
  checkSection('messenger', MESSENGER_RULES, value.messenger);
  checkSection('immune', IMMUNE_RULES, value.immune);
  checkSection('dashboard', DASHBOARD_RULES, value.dashboard);
  const dashboard = value.dashboard as unknown as DashboardGene;
  if (dashboard.port === 4222) throw invalid('dashboard.port', 'a port other than 4222', 4222);
  const messenger = value.messenger as unknown as MessengerGene;
  if (messenger.portMax < messenger.portMin) throw invalid('messenger.portMax', `at least messenger.portMin (${messenger.portMin})`, messenger.portMax);
  if (messenger.frontPort !== 0 && messenger.frontPort >= messenger.portMin && messenger.frontPort <= messenger.portMax) {
    throw invalid('messenger.frontPort', `outside the receivers' range ${messenger.portMin}-${messenger.portMax}`, messenger.frontPort);
  }
  if (messenger.maxBodyBytes >= messenger.maxFrameBytes) throw invalid('messenger.maxBodyBytes', `below messenger.maxFrameBytes (${messenger.maxFrameBytes})`, messenger.maxBodyBytes);
  const limits = value.limits as unknown as Limits;
  if (limits.deadAfterPulses <= limits.suspectAfterPulses) {
    throw invalid('limits.deadAfterPulses', `greater than limits.suspectAfterPulses (${limits.suspectAfterPulses})`, limits.deadAfterPulses);
  }
  if (limits.drainTimeoutMs * 2 > limits.shutdownTimeoutMs) {
    // Stragglers get SIGTERM at 60% of the shutdown timeout: a drain must fit well before it.
    throw invalid('limits.drainTimeoutMs', `at most half of limits.shutdownTimeoutMs (${limits.shutdownTimeoutMs})`, limits.drainTimeoutMs);
  }
  if (limits.regrowBackoffMaxMs < limits.regrowBackoffMs) {
    throw invalid('limits.regrowBackoffMaxMs', `at least limits.regrowBackoffMs (${limits.regrowBackoffMs})`, limits.regrowBackoffMaxMs);
  }
  const broker = value.broker as unknown as BrokerGene;
  if ((broker.replicas as number) === 2) throw invalid('broker.replicas', '0 (automatic), 1 or 3 (JetStream replicates to an odd number of servers)', 2);
  if (broker.port === 4222) throw invalid('broker.port', 'a port other than 4222 (the default NATS port is left to system servers)', 4222);
  if (broker.monitorPort === 4222) throw invalid('broker.monitorPort', 'a port other than 4222', 4222);
  if (broker.port !== 0 && broker.monitorPort === broker.port) throw invalid('broker.monitorPort', `a port other than broker.port (${broker.port})`, broker.monitorPort);
  if (limits.hormoneMaxBytes > broker.maxPayload) {
    throw invalid('limits.hormoneMaxBytes', `at most broker.maxPayload (${broker.maxPayload})`, limits.hormoneMaxBytes);
  }
  if (!isRecord(value.tissues)) throw invalid('tissues', 'an object of tissue name to tissue', value.tissues);
  const names = Object.keys(value.tissues);
  if (names.length === 0) throw invalid('tissues', 'at least one tissue', value.tissues);
  let minTotal = 0;
  for (const name of names) {
    if (!TISSUE_NAME.test(name)) throw invalid(`tissues[${JSON.stringify(name)}]`, 'named by lowercase letters, digits and dashes, starting with a letter, at most 32 characters', name);
    const tissue = value.tissues[name];
    checkSection(`tissues.${name}`, TISSUE_RULES, tissue);
    const t = tissue as unknown as TissueGene;
    if (t.min > t.max) throw invalid(`tissues.${name}.min`, `at most tissues.${name}.max (${t.max})`, t.min);
    if (t.low >= t.high) throw invalid(`tissues.${name}.low`, `below tissues.${name}.high (${t.high})`, t.low);
    if (t.target <= t.low || t.target >= t.high) throw invalid(`tissues.${name}.target`, `between tissues.${name}.low (${t.low}) and tissues.${name}.high (${t.high}), exclusive`, t.target);
    minTotal += t.min;
  }
  if (minTotal > limits.cellsPerHost) {
    throw invalid('limits.cellsPerHost', `at least the sum of every tissue's min (${minTotal})`, limits.cellsPerHost);
  }
  return deepFreeze(structuredClone(value) as unknown as Genome);
}

function deepFreeze<T>(value: T): Readonly<T> {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** Merges a partial genome over a base; tissues merge per tissue over TISSUE_DEFAULTS. */
export function mergeGenome(base: Genome, patch: unknown, source: string): Genome {
  if (!isRecord(patch)) throw new CellularError('GENOME_ERR_INVALID', `${source}: the genome must be a JSON object, received ${describe(patch)}`);
  const out = structuredClone(base) as unknown as Record<string, unknown>;
  for (const [key, value] of Object.entries(patch)) {
    if (key === 'tissues' && isRecord(value)) {
      if (!isRecord(out.tissues)) throw invalid('tissues', 'an object of tissue name to tissue', out.tissues);
      const tissues = out.tissues;
      for (const [name, t] of Object.entries(value)) {
        // `null` removes a default tissue, so a genome file can replace the default body plan.
        if (t === null) delete tissues[name];
        else tissues[name] = isRecord(t) ? { ...TISSUE_DEFAULTS, ...(isRecord(tissues[name]) ? tissues[name] : { module: name }), ...t } : t;
      }
    } else if ((key === 'limits' || key === 'broker' || key === 'messenger' || key === 'immune' || key === 'dashboard') && isRecord(value)) {
      out[key] = { ...(out[key] as object), ...value };
    } else {
      out[key] = value;
    }
  }
  return out as unknown as Genome;
}

export function readGenomeFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new CellularError('GENOME_ERR_FILE', `cannot read genome file ${path}: ${(cause as Error).message}`, { cause });
  }
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new CellularError('GENOME_ERR_FILE', `genome file ${path} is not valid JSON: ${(cause as Error).message}`, { cause });
  }
}

/**
 * Applies one `path=value` override (from `--set`). The value is parsed as JSON when it
 * parses (numbers, booleans, objects), else taken as a string.
 */
export function setGenomePath(genome: Genome, assignment: string): Genome {
  const eq = assignment.indexOf('=');
  if (eq <= 0) throw new CellularError('GENOME_ERR_INVALID', `--set expects path=value (for example limits.pulseIntervalMs=250), received ${describe(assignment)}`);
  const path = assignment.slice(0, eq).split('.');
  // Prototype keys would be dropped by the merge without a word: refuse them by name.
  if (path.some((k) => k === '__proto__' || k === 'prototype' || k === '')) {
    throw new CellularError('GENOME_ERR_UNKNOWN_FIELD', `genome.${path.join('.')} is not a genome field (from --set ${assignment.slice(0, eq)})`);
  }
  const raw = assignment.slice(eq + 1);
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    value = raw;
  }
  const patch: Record<string, unknown> = {};
  let cursor = patch;
  for (let i = 0; i < path.length - 1; i++) {
    const next: Record<string, unknown> = {};
    cursor[path[i]!] = next;
    cursor = next;
  }
  cursor[path[path.length - 1]!] = value;
  return mergeGenome(genome, patch, `--set ${assignment}`);
}

export interface GenomeSources {
  file?: string;
  sets?: readonly string[];
}

/** Defaults, then the file, then `--set` overrides; validated and frozen. */
export function loadGenome(sources: GenomeSources = {}): Readonly<Genome> {
  let genome = defaultGenome();
  if (sources.file !== undefined) genome = mergeGenome(genome, readGenomeFile(sources.file), sources.file);
  for (const s of sources.sets ?? []) genome = setGenomePath(genome, s);
  return validateGenome(genome);
}

/** A stable hash of the genome (keys sorted), carried in every pulse. */
/**
 * Fields each host sets for itself (its own addresses and ports): hosts of one organism
 * differ in them, so they are left out of the genome hash peers compare.
 */
export const HOST_LOCAL_FIELDS: ReadonlyArray<readonly [section: 'broker' | 'messenger' | 'dashboard', field: string]> = [
  ['broker', 'host'], ['broker', 'port'], ['broker', 'monitorPort'], ['messenger', 'host'], ['dashboard', 'host'], ['dashboard', 'port'],
];

export function genomeHash(genome: Readonly<Genome>): string {
  const shared: Record<string, unknown> = { ...genome };
  for (const [section, field] of HOST_LOCAL_FIELDS) {
    const s = genome[section] as unknown as Record<string, unknown> | undefined;
    if (s === undefined) continue;
    const { [field]: _local, ...rest } = (shared[section] ?? s) as Record<string, unknown>;
    shared[section] = rest;
  }
  return createHash('sha256').update(canonicalJson(shared)).digest('hex').slice(0, 16);
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (isRecord(value)) {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
