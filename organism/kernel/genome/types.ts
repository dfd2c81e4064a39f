/**
 * The genome's types: the organism's typed configuration, one interface per section. Each
 * field's default is written once, in defaults.ts (docs/genome.md lists them, checked by
 * test/organism/kernel/genome-doc.test.ts); its bounds are in rules.ts.
 */

export interface TissueGene {
  /** Tissue module: a built-in name (`stem`, `echo`) or a path to a compiled `.js` file. */
  module: string;
  /** Fewest living cells of this tissue. */
  min: number;
  /** Most living cells of this tissue. */
  max: number;
  /** Stress above which the tissue grows, in [0,1]. */
  high: number;
  /** Stress below which, for `idleMs`, the tissue shrinks, in [0,1]. */
  low: number;
  /**
   * Load each cell should carry after growth, in (low, high): a tissue grows to
   * ceil(demand / target) cells. Keeping it below `high` and a shrink from leaving any
   * cell above it is the hysteresis that stops divide/die oscillation.
   */
  target: number;
  /** How long a cell must stay below `low` before apoptosis. */
  idleMs: number;
  /** Half-life of the decayed stress mean. */
  halfLifeMs: number;
  /**
   * Fewest cells of this tissue on every live host (a host with a living cell of the
   * organism), within `max`: a host that joins brings them, and a host short of them gets
   * them placed there.
   */
  perHost: number;
}

export interface Limits {
  /** Most living cells on one host, all tissues together. */
  cellsPerHost: number;
  /** Most divisions per minute, organism-wide. */
  mitosisPerMinute: number;
  /** Most resident memory of all living cells on one host, MiB; a division that would pass it is refused. */
  rssPerHostMb: number;
  /** Replication budget of a cell made by the root key; a child gets less than its parent had (Hayflick limit). */
  lineageBudget: number;
  /** Whether cells run homeostasis (mitosis, apoptosis, regrowth). */
  homeostasis: boolean;
  /** First wait before regrowing a tissue whose new cells keep dying young; doubles per failure. */
  regrowBackoffMs: number;
  /** Cap on that wait. */
  regrowBackoffMaxMs: number;
  /** A cell that dies (or never pulses) this soon after it was made counts as a failed birth. */
  crashWindowMs: number;
  /** How long a cell being made may take to pulse before it counts as failed. */
  joinTimeoutMs: number;
  /**
   * Zygotes each host's grow keeps waiting: processes that imported the cell and its DNA
   * and are claimed by a division instead of a new process (cells/zygote.ts). 0: none.
   */
  zygotes: number;
  /** Largest encoded hormone accepted or sent, in bytes. */
  hormoneMaxBytes: number;
  /** Time between two pulses of one cell. */
  pulseIntervalMs: number;
  /**
   * A calm cell (no work since its last pulse, none in flight) pulses, and a host with no
   * news digests, only every this many intervals; silence is judged with that much slack
   * (docs/cells.md, "Calm stride"). 1: every interval.
   */
  calmStride: number;
  /** Missed pulses before a cell is `suspect`. */
  suspectAfterPulses: number;
  /** Missed pulses before a cell is `dead`. */
  deadAfterPulses: number;
  /** Hormones older (or further in the future) than this are stale. */
  hormoneMaxAgeMs: number;
  /**
   * How far out of order a sender's hormones may arrive and still be accepted once each
   * (its two threads publish over two connections). Sequences count microseconds, so this
   * is a span of send time.
   */
  replayWindowMs: number;
  /** How long a cell may take to drain before it exits anyway. */
  drainTimeoutMs: number;
  /** How long grow/stop wait for the census to empty before killing stragglers. */
  shutdownTimeoutMs: number;
  /** How long a dead cell stays listed in the census. */
  deadRetentionMs: number;
  /**
   * How long a silent cell whose process still runs counts as busy (its main thread stuck in
   * a long task) before its silence judges it like any other's, ms.
   */
  busyMaxMs: number;
  /** How long a cell stays without its broker before it gives up and exits (cause `error`). */
  brokerLossMs: number;
  /** Every cell's HTTP server (receivers, front door, dashboard): request headers must arrive within this, ms (slowloris). */
  httpHeadersTimeoutMs: number;
  /** A whole HTTP request must arrive within this, ms. */
  httpRequestTimeoutMs: number;
  /** An idle keep-alive HTTP connection is closed after this, ms. */
  httpKeepAliveMs: number;
  /** Open TCP connections one client address (IPv6: one /64) may hold on one HTTP server. */
  httpConnectionsPerAddress: number;
}

export interface BrokerGene {
  /** Address the private nats-server binds. */
  host: string;
  /** Client port; 0 picks a free one (never 4222). */
  port: number;
  /** Monitoring port; 0 picks a free one. */
  monitorPort: number;
  /** Largest message the private server accepts. */
  maxPayload: number;
  /**
   * JetStream replicas of every stream and bucket: 1, 3, or 0 = 3 when the cluster can place
   * three (at least three JetStream servers up), else 1.
   */
  replicas: 0 | 1 | 3;
}

/** The messenger: receivers' sockets and limits, accounts, sessions and message storage. */
export interface MessengerGene {
  /** Address receivers listen on. */
  host: string;
  /** Lowest port of the range each receiver takes its own port from. */
  portMin: number;
  /** Highest port of that range. */
  portMax: number;
  /** The front door: one receiver at a time holds it; 0 disables it. */
  frontPort: number;
  /**
   * Origins allowed to open a WebSocket, comma-separated (`https://chat.example.org`);
   * empty allows the receivers' own origins only. A request without an Origin header
   * (a non-browser client) is allowed.
   */
  origins: string;
  /**
   * The one URL receivers give clients for failover (`welcome`, `receivers`, `moved`, GET
   * /receivers) instead of their own: the front door in front of them (nginx,
   * docs/deployment.md), when their own addresses are not reachable from browsers. Empty:
   * their own URLs.
   */
  publicUrl: string;
  /** Largest client frame, bytes; a larger one is refused with PROTO_ERR_TOO_LARGE. */
  maxFrameBytes: number;
  /** Largest message body (ciphertext), bytes. */
  maxBodyBytes: number;
  /** Frames per second one connection may send (token bucket, burst of the same size). */
  framesPerSecond: number;
  /** Open sockets one IP address (IPv6: one /64) may hold on one receiver. */
  connectionsPerIp: number;
  /**
   * Addresses of reverse proxies (nginx, docs/deployment.md) whose X-Real-IP / X-Forwarded-For
   * name the client, comma-separated; from anyone else those headers are ignored. Empty: none.
   */
  trustedProxies: string;
  /** A WebSocket that sends nothing and answers no ping for this long is closed (4008), ms. */
  wsIdleMs: number;
  /**
   * Outbound bytes a client may leave unread. Delivery pauses at half of it; a push that
   * would pass it cuts the client off (close 4001).
   */
  maxPendingBytes: number;
  /** How long delivery waits for a client to read its backlog before cutting it off (close 4001). */
  slowClientMs: number;
  /**
   * Client acks within this many ms share one write of the user's cursor. Longer means
   * fewer KV writes and more messages sent again after a failover.
   */
  cursorFlushMs: number;
  /**
   * Messages one receiver may have on their way into JetStream at once; further sends
   * wait their turn (in order), so a send flood leaves the broker room to deliver.
   */
  storeInflight: number;
  /** Most members (copies) in one group send. */
  groupMaxMembers: number;
  /** Most messages in one history page, and most pushed to a client before it acks. */
  pageMax: number;
  /** scrypt cost for new password hashes, log2 N (a hash takes 128 · r · N bytes of memory). */
  scryptLogN: number;
  /** scrypt block size r. */
  scryptR: number;
  /** scrypt parallelism p. */
  scryptP: number;
  /** Failed logins one username may take per window, organism-wide. */
  loginAttemptsPerUser: number;
  /**
   * Failed logins one username may take per window from all addresses together; a login
   * that shows one of the user's device tickets (given at each login) passes it, so an
   * attacker who fills it from many addresses does not lock the owner out.
   */
  loginCeilingPerUser: number;
  /** Logins and registrations (of any user) one IP address may try per window, organism-wide. */
  loginAttemptsPerIp: number;
  /** The rate-limit window, ms. */
  loginWindowMs: number;
  /** How long a session token lives, ms (bucket TTL). */
  sessionTtlMs: number;
  /** How long a stored message is kept, ms. */
  messageRetentionMs: number;
  /** Most messages one inbox holds (within messageRetentionMs); more are refused with MESSAGE_ERR_QUOTA, none dropped. */
  inboxMaxMessages: number;
  /**
   * Most bytes the messages stream holds, so messages cannot take the disk the buckets share;
   * more are refused with STORE_ERR_FULL. The server must be able to reserve it. 0: no cap of
   * our own (JetStream's max_file_store, 75 % of the disk by default, is the cap).
   */
  storeMaxBytes: number;
  /** Window within which a resent message id is stored only once, ms. */
  dedupeWindowMs: number;
  /**
   * How long a receiver keeps retrying a worker request that found no worker at all (one
   * being regrown), ms. Safe to retry: "no responders" means no worker received it.
   */
  workerWaitMs: number;
}

/**
 * The immune system: what counts as misbehaviour, and how the jury works (docs/immune.md).
 * Every threshold is evidence a cell gathers itself; missed pulses are never evidence.
 */
export interface ImmuneGene {
  /** Whether cells gather evidence, accuse, vote and kill. */
  enabled: boolean;
  /** Hormones per second one sender may send, averaged over floodWindowMs, before it is flooding. */
  floodPerSecond: number;
  /** The window of that average. */
  floodWindowMs: number;
  /**
   * On the organism's own broker (where a hormone's subject names the identity that sent it):
   * messages per second from one identity past which every process drops the rest unread
   * and grow revokes the identity at once, without a trial. A flood must not blind the census.
   */
  cutoffPerSecond: number;
  /** Forged traffic (signed hormones with a bad body, votes or toxins that break the rules) a sender may send before it is accused. */
  forgeriesMax: number;
  /** How often each host's grow checks the claimed CPU and RSS of its cells against the real process (organism/grow/host-watch.ts). */
  checkIntervalMs: number;
  /** A peer's claimed CPU time may differ from its process's real one by this much, ms (beyond what it could use since the pulse). */
  liarSlackMs: number;
  /** A pulse's claimed CPU percent may differ from what its own CPU time grew by since the previous pulse by this many points. */
  liarCpuPoints: number;
  /** Claimed RSS may differ from the real one by this factor (and 64 MiB). */
  liarRssFactor: number;
  /** Consecutive failed checks before a peer is lying. */
  liarChecks: number;
  /** Pulses with a genome or code hash other than its host's grow's before a cell is tampered. */
  genomeMismatches: number;
  /** How long the jury has to vote; a trial without 2/3 guilty by then is an acquittal. */
  voteDeadlineMs: number;
  /**
   * Cells that watch each cell and judge it: its panel, drawn by sortition from the public
   * beacon (organism/kernel/sortition.ts). A verdict needs ⌈2/3⌉ of it. docs/immune.md gives
   * the odds that colluders capture a panel of this size.
   */
  jury: number;
}

/** The dashboard cell's page, its live feed, its controls and the flight recorder (docs/dashboard.md). */
export interface DashboardGene {
  /** Address the dashboard listens on. */
  host: string;
  /**
   * Host names (besides IP addresses and localhost) a request may name in its Host header,
   * comma-separated: any other name is refused (421), so DNS rebinding reads nothing. Empty: none.
   */
  hosts: string;
  /** Its port; when taken, it listens on a free one (shown in the census and by grow). 0 always picks a free one. */
  port: number;
  /** How often the page gets the census and new events. */
  pushIntervalMs: number;
  /** Events (births, deaths, decisions, trials…) the cell keeps in memory and sends a new page. */
  eventsMax: number;
  /** Points of each time series kept (one per second). */
  seriesPoints: number;
  /** Pages connected at once; more are refused. */
  clientsMax: number;
  /** Largest frame a page may send, bytes. */
  frameMaxBytes: number;
  /** Controls one page may send per minute. */
  controlsPerMinute: number;
  /** Longest load a control may apply, seconds. */
  loadMaxSeconds: number;
  /** Highest request rate a load control may apply, per second. */
  loadMaxRate: number;
  /** How long the flight recorder keeps hormones and census frames, ms. */
  recorderMaxAgeMs: number;
  /** The flight recorder's size cap (oldest dropped first), bytes. */
  recorderMaxBytes: number;
  /** How often the dashboard records a census frame into the flight recorder, ms. */
  frameIntervalMs: number;
}

export interface Genome {
  /** Genome format version. */
  version: 1;
  tissues: Record<string, TissueGene>;
  limits: Limits;
  broker: BrokerGene;
  messenger: MessengerGene;
  immune: ImmuneGene;
  dashboard: DashboardGene;
}
