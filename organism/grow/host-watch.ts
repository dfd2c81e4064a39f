/**
 * A host's watch over its own cells: the evidence that lives in pulses and processes,
 * gathered once per host by the process that already verifies every pulse of the host
 * (grow), and said in the host digest's rows (`e`, organism/grow/host-digest.ts). The
 * cells' watchers — drawn by sortition, a bounded number per cell — read it there and
 * accuse; the jury votes on it (cells/immune/immune.ts). So no cell reads another's pulses
 * or /proc files, and watching costs a cell nothing per peer (docs/immune.md, "Evidence").
 *
 * What it finds, with the genome's immune thresholds:
 * - `flood`: more than floodPerSecond hormones a second from one cell (every kind it hears);
 * - `genome`: pulses carrying another genome hash or code hash than this grow's;
 * - `liar`: pulses whose claimed CPU time, CPU percent or RSS the cell's real process
 *   contradicts (exact accounting against /proc, see #check).
 */
import { availableParallelism } from 'node:os';
import { Evidence } from '../../cells/immune/evidence.ts';
import { cellMarkers } from '../../cells/spawn.ts';
import type { Census } from '../kernel/census.ts';
import type { ImmuneGene } from '../kernel/genome/index.ts';
import type { Hormone } from '../kernel/hormone.ts';
import { isProcessOf, localCells } from '../kernel/processes.ts';
import { usageOf, type Usage } from '../kernel/process-usage.ts';
import type { PulseBody, RowFinding } from '../kernel/vocabulary.ts';

export interface HostWatchOptions {
  gene: ImmuneGene;
  organism: string;
  host: string;
  /** The genome hash every cell must pulse. */
  genomeHash: string;
  /** The code hash every cell must pulse (cells/code-hash.ts); undefined until known (then only genomes are compared). */
  code: () => string | undefined;
  census: Pick<Census, 'get'>;
  /** A process's CPU time and RSS (tests may substitute a reader). @default usageOf (/proc) */
  usage?: (pid: number) => Usage | undefined;
  now?: () => number;
}

interface Claim {
  ts: number;
  n: number;
  cpu: number;
  cpuMs: number;
  rss: number;
}

/**
 * A claimed CPU time above the real one by more than this is a lie: CPU time only grows, and
 * the claim was read from the same kernel counter earlier (the margin covers rounding).
 */
const OVERCLAIM_MS = 50;

/** Cores of this host: a process's CPU time grows at most this fast. */
const CORES = Math.max(1, availableParallelism());

export class HostWatch {
  readonly #o: HostWatchOptions;
  readonly #now: () => number;
  readonly evidence: Evidence;
  /** Each cell's last two pulses' claims (all a check compares). */
  readonly #claims = new Map<string, Claim[]>();
  /** Pids found to be the cell's own by their command line (a liar may claim any pid). */
  readonly #verifiedPid = new Map<string, number>();
  #checked = 0;
  /** Checks made and lies found (stats). */
  readonly stats = { checks: 0, lies: 0 };

  constructor(options: HostWatchOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.evidence = new Evidence(options.gene, this.#now);
  }

  /** Every admitted hormone grow hears: those of this host's cells are evidence. */
  observe(h: Hormone): void {
    if (h.kind === 'digest') return;
    const pulse = h.kind === 'pulse' ? (h.body as PulseBody) : undefined;
    // Its host as the census holds it (from its certificate), never as its pulse says: a cell
    // that pulsed another host's name would escape every check.
    if (this.#o.census.get(h.from)?.host !== this.#o.host) return;
    this.evidence.hormone(h.from);
    if (!pulse) return;
    // Every pulse after the first (n ≥ 1) carries the code hash; the first is sent before the
    // cell could read its code (an empty one later is a mismatch too).
    const code = this.#o.code();
    const [theirs, ours] = pulse.n >= 1 && code !== undefined ? [`${pulse.genome}/${pulse.code}`, `${this.#o.genomeHash}/${code}`] : [pulse.genome, this.#o.genomeHash];
    this.evidence.genome(h.from, theirs, ours);
    let claims = this.#claims.get(h.from);
    if (!claims) this.#claims.set(h.from, (claims = []));
    claims.push({ ts: h.ts, n: pulse.n, cpu: pulse.cpu, cpuMs: pulse.cpuMs, rss: pulse.rss });
    if (claims.length > 2) claims.shift();
  }

  /** `<genome hash>/<code hash>` this host's cells are held to (once the code hash is known). */
  holdsTo(): string | undefined {
    const code = this.#o.code();
    return code === undefined ? undefined : `${this.#o.genomeHash}/${code}`;
  }

  /**
   * Another host's digest: undefined if its grow holds its cells to what this one does, else
   * what it holds them to (once per host and value: a line for the operator, since each grow
   * judges only its own host's cells and a half-upgraded cluster would go unnoticed).
   */
  otherHost(host: string, genome: string | undefined): string | undefined {
    const mine = this.holdsTo();
    if (host === this.#o.host || genome === undefined || mine === undefined || genome === mine || this.#told.get(host) === genome) return undefined;
    this.#told.set(host, genome);
    return genome;
  }
  readonly #told = new Map<string, string>();

  /** What the digest row of `id` says against it, if anything is past its threshold. */
  finding(id: string): RowFinding | undefined {
    const f = this.evidence.against(id, 'flood') ?? this.evidence.against(id, 'genome') ?? this.evidence.against(id, 'liar');
    return f && { k: f.kind as RowFinding['k'], x: f.detail.slice(0, 256) };
  }

  /** Called every digest round: checks metabolism every immune.checkIntervalMs, forgets the dead. */
  round(now = this.#now()): void {
    for (const id of this.#claims.keys()) {
      const c = this.#o.census.get(id);
      if (!c || c.state === 'dead') {
        this.#claims.delete(id);
        this.#verifiedPid.delete(id);
        this.evidence.forget(id);
      }
    }
    this.evidence.takeChanged(); // (only the immune system's review reads it)
    if (now - this.#checked < this.#o.gene.checkIntervalMs * 0.75) return;
    this.#checked = now;
    this.#check(now);
  }

  /**
   * Is what each cell claims what its process does? Pulses carry the CPU time the process has
   * used (cpuMs) and the CPU percent of the interval before them:
   *  - the percent must match how much cpuMs grew since the previous pulse (a liar that
   *    claims a full core while reporting its true CPU time contradicts itself);
   *  - cpuMs must match the real process's CPU time (/proc's utime + stime): never more than it
   *    (beyond OVERCLAIM_MS), and not less than it by more than the process could have used
   *    since the pulse plus liarSlackMs (a liar whose story is consistent drifts past the
   *    truth within a pulse);
   *  - RSS must be within liarRssFactor (and 64 MiB) of the real one.
   * Exact accounting, not sampling: pulse timing cannot make an honest cell look a liar.
   */
  #check(now: number): void {
    const g = this.#o.gene;
    const usage = this.#o.usage ?? usageOf;
    let scanned: Map<string, number> | undefined;
    for (const [id, claims] of this.#claims) {
      const c = this.#o.census.get(id);
      // Every cell not dead: its state is what it says (a liar that pulses `draining` forever is still checked).
      if (!c || c.state === 'dead' || claims.length === 0) continue;
      // The real pid: the one it claims if that process is this cell (by its command line),
      // else found by scanning for it.
      let pid: number | undefined;
      if (this.#verifiedPid.get(id) === c.pid) pid = c.pid;
      else if (isProcessOf(c.pid, cellMarkers(id))) this.#verifiedPid.set(id, (pid = c.pid));
      else pid = (scanned ??= new Map(localCells(this.#o.organism).map((p) => [p.cell, p.pid]))).get(id);
      if (pid === undefined) continue;
      const u = usage(pid);
      if (!u) continue;
      this.stats.checks++;
      const last = claims.at(-1)!;
      const prev = claims.length > 1 ? claims.at(-2)! : undefined;
      let lie: string | undefined;
      const since = Math.max(0, now - last.ts);
      if (last.cpuMs > u.cpuMs + OVERCLAIM_MS) {
        lie = `claims ${Math.round(last.cpuMs)} ms of CPU by its last pulse; its process has used ${Math.round(u.cpuMs)} ms`;
      } else if (u.cpuMs - last.cpuMs > since * CORES + g.liarSlackMs) {
        lie = `claims ${Math.round(last.cpuMs)} ms of CPU ${since} ms ago; its process has used ${Math.round(u.cpuMs)} ms`;
      } else if (prev && last.n === prev.n + 1 && prev.n >= 1 && last.ts > prev.ts) {
        // (Pulse 0, sent at birth, gives the percent since the process started: not comparable.)
        const grew = ((last.cpuMs - prev.cpuMs) / (last.ts - prev.ts)) * 100;
        if (Math.abs(grew - last.cpu) > g.liarCpuPoints) lie = `claims ${last.cpu.toFixed(0)} % CPU while its CPU time grew ${grew.toFixed(0)} % over ${last.ts - prev.ts} ms`;
      }
      if (!lie) {
        const ratio = Math.max(last.rss, u.rss) / Math.max(1, Math.min(last.rss, u.rss));
        if (ratio > g.liarRssFactor && Math.abs(last.rss - u.rss) > 64 * 1024 * 1024) lie = `claims ${(last.rss / 2 ** 20).toFixed(0)} MiB RSS, its process has ${(u.rss / 2 ** 20).toFixed(0)} MiB`;
      }
      if (lie) this.stats.lies++;
      this.evidence.metabolism(id, lie);
    }
  }
}
