/**
 * The genome's rules: each field's bounds as an organism/wire/schema.ts shape, then the rules
 * between fields. A failure is GENOME_ERR_INVALID (or GENOME_ERR_UNKNOWN_FIELD, listing the
 * known ones) and names the field, what was expected and what was received.
 */
import { CellularError } from '../../wire/errors.ts';
import { bool, fail, fields, finite, int, isMap, leaf, map, matching, record, req, type Check, type CheckContext, type Shape } from '../../wire/schema.ts';
import type { BrokerGene, DashboardGene, Genome, ImmuneGene, Limits, MessengerGene, TissueGene } from './types.ts';

/** Genome values are settings, not secrets: messages quote strings, and speak JSON. */
export const GENOME: CheckContext = Object.freeze({
  code: 'GENOME_ERR_INVALID',
  limits: {},
  limitPrefix: '',
  json: true,
  quoteStrings: true,
  unknownField: (prefix: string, key: string, known: readonly string[]) =>
    new CellularError('GENOME_ERR_UNKNOWN_FIELD', `${prefix}${key} is not a genome field; known fields: ${known.join(', ')}`),
});

/** Raises GENOME_ERR_INVALID for `genome.<field>`. */
export function invalid(field: string, expected: string, value: unknown): never {
  return fail(GENOME, `genome.${field}`, expected, value);
}

const LIMIT: Shape<Limits> = {
  cellsPerHost: req(int(1, 10_000)),
  mitosisPerMinute: req(int(0, 100_000)),
  rssPerHostMb: req(int(64, 16_777_216)),
  lineageBudget: req(int(0, 1_000_000)),
  homeostasis: req(bool),
  regrowBackoffMs: req(int(10, 3_600_000)),
  regrowBackoffMaxMs: req(int(10, 86_400_000)),
  crashWindowMs: req(int(0, 3_600_000)),
  joinTimeoutMs: req(int(100, 600_000)),
  zygotes: req(int(0, 64)),
  hormoneMaxBytes: req(int(512, 1_048_576)),
  pulseIntervalMs: req(int(50, 60_000)),
  calmStride: req(int(1, 8)),
  suspectAfterPulses: req(int(1, 1_000)),
  deadAfterPulses: req(int(2, 1_000)),
  hormoneMaxAgeMs: req(int(1_000, 3_600_000)),
  replayWindowMs: req(int(10, 600_000)),
  drainTimeoutMs: req(int(0, 600_000)),
  shutdownTimeoutMs: req(int(100, 3_600_000)),
  deadRetentionMs: req(int(0, 3_600_000)),
  busyMaxMs: req(int(0, 86_400_000)),
  brokerLossMs: req(int(500, 86_400_000)),
  httpHeadersTimeoutMs: req(int(100, 600_000)),
  httpRequestTimeoutMs: req(int(100, 3_600_000)),
  httpKeepAliveMs: req(int(100, 600_000)),
  httpConnectionsPerAddress: req(int(1, 1_000_000)),
};

/** Tissue names become NATS subject tokens and file names, so keep them plain. */
const TISSUE_NAME = /^[a-z][a-z0-9-]{0,31}$/;

const TISSUE: Shape<TissueGene> = {
  module: req(matching(/^\S+$/, 'a built-in tissue name or a path to a .js file')),
  min: req(int(0, 10_000)),
  max: req(int(1, 10_000)),
  high: req(finite(0, 1)),
  low: req(finite(0, 1)),
  target: req(finite(0, 1)),
  idleMs: req(int(0, 86_400_000)),
  halfLifeMs: req(int(1, 3_600_000)),
  perHost: req(int(0, 10_000)),
};

const BROKER: Shape<BrokerGene> = {
  host: req(matching(/^[0-9a-zA-Z.:\-[\]]+$/, 'an IP address or host name')),
  port: req(int(0, 65_535)),
  monitorPort: req(int(0, 65_535)),
  maxPayload: req(int(1024, 67_108_864)),
  replicas: req(int(0, 3) as Check<0 | 1 | 3>), // 2 is refused below, with the reason
};

const MESSENGER: Shape<MessengerGene> = {
  host: req(matching(/^[0-9a-zA-Z.:\-[\]]+$/, 'an IP address or host name')),
  portMin: req(int(1, 65_535)),
  portMax: req(int(1, 65_535)),
  frontPort: req(int(0, 65_535)),
  origins: req(matching(/^(https?:\/\/[^\s,/]+(,https?:\/\/[^\s,/]+)*)?$/, 'a comma-separated list of origins such as https://chat.example.org, or empty')),
  publicUrl: req(matching(/^(https?:\/\/[^\s,/"'<>]+)?$/, 'a base URL such as https://chat.example.org (scheme and host[:port], no path), or empty')),
  maxFrameBytes: req(int(1024, 16_777_216)),
  maxBodyBytes: req(int(64, 16_777_216)),
  framesPerSecond: req(int(1, 1_000_000)),
  connectionsPerIp: req(int(1, 1_000_000)),
  trustedProxies: req(matching(/^([0-9A-Fa-f:.]+(,[0-9A-Fa-f:.]+)*)?$/, 'a comma-separated list of IP addresses, or empty')),
  wsIdleMs: req(int(1_000, 3_600_000)),
  maxPendingBytes: req(int(1024, 1_073_741_824)),
  slowClientMs: req(int(100, 3_600_000)),
  cursorFlushMs: req(int(0, 60_000)),
  storeInflight: req(int(1, 100_000)),
  groupMaxMembers: req(int(2, 10_000)),
  pageMax: req(int(1, 10_000)),
  scryptLogN: req(int(10, 22)),
  scryptR: req(int(1, 32)),
  scryptP: req(int(1, 16)),
  loginAttemptsPerUser: req(int(1, 1_000_000)),
  loginCeilingPerUser: req(int(1, 1_000_000)),
  loginAttemptsPerIp: req(int(1, 1_000_000)),
  loginWindowMs: req(int(1_000, 86_400_000)),
  sessionTtlMs: req(int(10_000, 365 * 86_400_000)),
  messageRetentionMs: req(int(60_000, 3_650 * 86_400_000)),
  inboxMaxMessages: req(int(1, 1_000_000_000)),
  storeMaxBytes: req(int(0, Number.MAX_SAFE_INTEGER)),
  dedupeWindowMs: req(int(1_000, 86_400_000)),
  workerWaitMs: req(int(0, 60_000)),
};

const IMMUNE: Shape<ImmuneGene> = {
  enabled: req(bool),
  floodPerSecond: req(int(1, 1_000_000)),
  floodWindowMs: req(int(100, 600_000)),
  cutoffPerSecond: req(int(10, 10_000_000)),
  forgeriesMax: req(int(1, 1_000_000)),
  checkIntervalMs: req(int(50, 600_000)),
  liarSlackMs: req(int(10, 600_000)),
  liarCpuPoints: req(finite(1, 100_000)),
  liarRssFactor: req(finite(1.1, 1_000)),
  liarChecks: req(int(1, 1_000)),
  genomeMismatches: req(int(1, 1_000)),
  voteDeadlineMs: req(int(100, 600_000)),
  jury: req(int(1, 64)),
};

const DASHBOARD: Shape<DashboardGene> = {
  hosts: req(matching(/^([A-Za-z0-9.-]+(,[A-Za-z0-9.-]+)*)?$/, 'a comma-separated list of host names, or empty')),
  host: req(matching(/^[0-9a-zA-Z.:\-[\]]+$/, 'an IP address or host name')),
  port: req(int(0, 65_535)),
  pushIntervalMs: req(int(50, 60_000)),
  eventsMax: req(int(10, 1_000_000)),
  seriesPoints: req(int(10, 100_000)),
  clientsMax: req(int(1, 10_000)),
  frameMaxBytes: req(int(256, 1_048_576)),
  controlsPerMinute: req(int(1, 100_000)),
  loadMaxSeconds: req(int(1, 86_400)),
  loadMaxRate: req(int(1, 1_000_000)),
  recorderMaxAgeMs: req(int(60_000, 30 * 86_400_000)),
  recorderMaxBytes: req(int(1_048_576, 1_099_511_627_776)),
  frameIntervalMs: req(int(100, 60_000)),
};

const SHAPE: Shape<Genome> = {
  version: req(leaf<1>((v) => v === 1, () => 'the number 1')),
  tissues: req(record(matching(TISSUE_NAME, 'named by lowercase letters, digits and dashes, starting with a letter, at most 32 characters'), map(TISSUE))),
  limits: req(map(LIMIT)),
  broker: req(map(BROKER)),
  messenger: req(map(MESSENGER)),
  immune: req(map(IMMUNE)),
  dashboard: req(map(DASHBOARD)),
};

/** Validates a complete genome and returns a deep-frozen copy (the input stays the caller's). */
export function validateGenome(value: unknown): Readonly<Genome> {
  if (!isMap(value)) fail(GENOME, 'genome', 'an object', value);
  const genome = fields(value, SHAPE, 'genome.', GENOME) as unknown as Genome;
  crossCheck(genome);
  return deepFreeze(genome);
}

/** The rules between fields, once every field is known to be in its bounds. */
function crossCheck(genome: Genome): void {
  const { dashboard, messenger, limits, broker } = genome;
  if (dashboard.port === 4222) invalid('dashboard.port', 'a port other than 4222', 4222);
  if (messenger.portMax < messenger.portMin) invalid('messenger.portMax', `at least messenger.portMin (${messenger.portMin})`, messenger.portMax);
  if (messenger.frontPort !== 0 && messenger.frontPort >= messenger.portMin && messenger.frontPort <= messenger.portMax) {
    invalid('messenger.frontPort', `outside the receivers' range ${messenger.portMin}-${messenger.portMax}`, messenger.frontPort);
  }
  if (messenger.maxBodyBytes >= messenger.maxFrameBytes) invalid('messenger.maxBodyBytes', `below messenger.maxFrameBytes (${messenger.maxFrameBytes})`, messenger.maxBodyBytes);
  if (limits.deadAfterPulses <= limits.suspectAfterPulses) {
    invalid('limits.deadAfterPulses', `greater than limits.suspectAfterPulses (${limits.suspectAfterPulses})`, limits.deadAfterPulses);
  }
  if (limits.drainTimeoutMs * 2 > limits.shutdownTimeoutMs) {
    // Stragglers get SIGTERM at 60% of the shutdown timeout: a drain must fit well before it.
    invalid('limits.drainTimeoutMs', `at most half of limits.shutdownTimeoutMs (${limits.shutdownTimeoutMs})`, limits.drainTimeoutMs);
  }
  if (limits.regrowBackoffMaxMs < limits.regrowBackoffMs) {
    invalid('limits.regrowBackoffMaxMs', `at least limits.regrowBackoffMs (${limits.regrowBackoffMs})`, limits.regrowBackoffMaxMs);
  }
  if ((broker.replicas as number) === 2) invalid('broker.replicas', '0 (automatic), 1 or 3 (JetStream replicates to an odd number of servers)', 2);
  if (broker.port === 4222) invalid('broker.port', 'a port other than 4222 (the default NATS port is left to system servers)', 4222);
  if (broker.monitorPort === 4222) invalid('broker.monitorPort', 'a port other than 4222', 4222);
  if (broker.port !== 0 && broker.monitorPort === broker.port) invalid('broker.monitorPort', `a port other than broker.port (${broker.port})`, broker.monitorPort);
  if (limits.hormoneMaxBytes > broker.maxPayload) {
    invalid('limits.hormoneMaxBytes', `at most broker.maxPayload (${broker.maxPayload})`, limits.hormoneMaxBytes);
  }
  const names = Object.keys(genome.tissues);
  if (names.length === 0) invalid('tissues', 'at least one tissue', genome.tissues);
  let minTotal = 0;
  for (const name of names) {
    const t = genome.tissues[name]!;
    if (t.min > t.max) invalid(`tissues.${name}.min`, `at most tissues.${name}.max (${t.max})`, t.min);
    if (t.low >= t.high) invalid(`tissues.${name}.low`, `below tissues.${name}.high (${t.high})`, t.low);
    if (t.target <= t.low || t.target >= t.high) invalid(`tissues.${name}.target`, `between tissues.${name}.low (${t.low}) and tissues.${name}.high (${t.high}), exclusive`, t.target);
    minTotal += t.min;
  }
  if (minTotal > limits.cellsPerHost) invalid('limits.cellsPerHost', `at least the sum of every tissue's min (${minTotal})`, limits.cellsPerHost);
}

function deepFreeze<T>(value: T): Readonly<T> {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
