/**
 * A thousand cells across the three test hosts (simulations/test-hosts.ts): each host runs
 * the real `cellular grow` in a cluster (simulations/host-cluster.ts) and homeostasis grows
 * `real` real echo cells among them; then synthetic cells (simulations/synthetic-cells.ts),
 * each running the real immune system and voting (simulations/synthetic-immune.ts), fill the
 * census to `cells` on three made-up hosts. Then, with the organism at full size:
 *
 *   1. idle: the CPU of every real cell, broker and grow, and of this process (the synthetic
 *      cells), over a window; every real cell's census, asked, against the truth;
 *   2. kill -9 of `kills` real cells, one at a time: kill → dead in this process's census
 *      and in the synthetic cells' census (both from the host digests alone, as a cell's);
 *   3. a flooder injected through a host's operator (the dashboard's control): onset (its
 *      first hormone) → quarantined (condemned in the census) and → its process gone;
 *   4. a cancer injected the same way: onset → condemned, and → every cell of its lineage gone.
 *
 * Juries are drawn from the whole census when the accused's host holds no more than
 * `immune.jury` cells (organism/kernel/sortition.ts); `jury` is set above the real cells per
 * host, so most jurors of a real offender are synthetic cells, and they must vote for it to
 * be convicted. Everything started is stopped by pid and the namespaces deleted.
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { lineageOf } from '../cells/immune/jury.ts';
import { LineageWatch } from '../cells/immune/lineage-watch.ts';
import { Observer } from '../organism/grow/observer.ts';
import { commandUser } from '../organism/grow/commands/target.ts';
import { CA_CERT_FILE, caPem } from '../organism/grow/organism-ca.ts';
import { loadOrCreateRootKey } from '../organism/grow/root-key.ts';
import { readRecord } from '../organism/grow/record.ts';
import { loadOrCreateDashboardToken, signControl } from '../organism/kernel/dashboard-token.ts';
import { loadGenome } from '../organism/kernel/genome/index.ts';
import type { Hormone } from '../organism/kernel/hormone.ts';
import { isAlive, localCells } from '../organism/kernel/processes.ts';
import { openReply, pack } from '../organism/kernel/reply.ts';
import { openLineage } from '../organism/kernel/stores.ts';
import type { AccuseBody, ToxinBody, VerdictBody, VoteBody } from '../organism/kernel/vocabulary.ts';
import { within } from '../organism/kernel/within.ts';
import { CellularError, throwIfAborted } from '../organism/wire/errors.ts';
import { distribution, type Distribution } from '../organism/chaos/stats.ts';
import type { BenchRunOptions } from './bench-options.ts';
import { HostCpu } from './host-cpu.ts';
import { growOnHost, killHost, prepareHostDirs, stopHosts, type Grown } from './host-cluster.ts';
import { readCpuMicros } from './procfs.ts';
import { SyntheticSwarm } from './synthetic-cells.ts';
import type { SyntheticImmuneStats } from './synthetic-immune.ts';
import { TestHosts, type HostsMode } from './test-hosts.ts';
import { waitFor } from './wait-for.ts';

const BROKER_PORT = 4260;
const MONITOR_PORT = 8260;
const ROUTE_PORT = 6260;
/** Made-up hosts the synthetic cells live on (three hundred each at the default size: six hosts in all). */
const SIM_HOSTS = 3;
/** The observer's 'host': none of the organism's, so it reads no pulses, only digests. */
const OBSERVER_HOST = 'scale-hosts-observer';

export interface ScaleHostsOptions extends BenchRunOptions {
  /** Cells in the census in all, real and synthetic. @default 1000 */
  cells: number;
  /** Real cell processes (echo cells and the stem pool), spread over the three hosts. @default 100 */
  real: number;
  /** kill -9 rounds. @default 5 */
  kills: number;
  /** immune.jury for the run: above the real cells per host, so panels are drawn from the whole census. @default 41 */
  jury: number;
  /** Length of the idle window, s. @default 10 */
  seconds: number;
  /** Quiet spell before the idle window, s. @default 20 */
  settleS: number;
  /** Use loopback addresses even where namespaces could be made. */
  loopback?: boolean;
  /**
   * Each test host its own CPU cgroup with an equal weight (simulations/host-cpu.ts), as
   * separate machines would be; false: they share the machine's cores as processes do. @default true
   */
  separateCpu?: boolean;
  /** The offenders injected, in order. @default ['flood', 'cancer'] */
  faults?: readonly ('flood' | 'cancer')[];
}

export interface Offence {
  fault: 'flood' | 'cancer';
  cell: string;
  host: string;
  /** onset (its first hormone heard) → condemned in this process's census, ms. */
  quarantinedMs: number | null;
  /** onset → its process gone (cancer: every process of its lineage), ms. */
  deadMs: number | null;
  /**
   * A cancer's offence: onset → the certificate of its first child past the budget its own
   * certificate gave it (written before that child runs), ms. Until then it is a cell like
   * any other; from then on it is cancer, and the targets count from there.
   */
  offenceMs: number | null;
  /** onset → the first accusation against it heard here, ms. */
  accusedMs: number | null;
  /** Cells of its lineage that were born (cancer). */
  lineage: number;
  /** The panel of the accusation that convicted it, and who sat on it. */
  jury: { size: number; synthetic: number; real: number };
  guiltyVotes: { synthetic: number; real: number };
  verdict: string;
}

export interface ScaleHostsResult {
  mode: HostsMode;
  fallbackReason: string | null;
  options: { cells: number; real: number; kills: number; jury: number; seconds: number; pulseIntervalMs: number };
  grew: { seconds: number; real: number; perHost: Record<string, number> };
  census: { total: number; synthetic: number; real: number; simHosts: number };
  idle: { seconds: number; cells: number; brokers: number; grows: number; synthetic: number; total: number; perRealCell: number };
  /** What a few real cells handled per second over the idle window (their stats, before and after). */
  perCellRates: { hormones: number; digests: number; rows: number; censusChanges: number; plans: number; views: number; gapsAsked: number } | null;
  /** The run's census over the idle window: its events by kind (a state change as from→to, real or synthetic), all of which should be rare. */
  idleChurn: Record<string, number>;
  /** Every real cell asked for its census: how far each was from the truth. */
  agreement: { asked: number; answered: number; truth: number; maxOff: number; offs: number[] };
  kills: { cell: string; host: string; observerMs: number | null; cellViewMs: number | null }[];
  killDist: { observer: Distribution | null; cellView: Distribution | null };
  offences: Offence[];
  synthetic: SyntheticImmuneStats | null;
  /** Every accusation heard: who accused whom of what (honest cells accused are the false ones). */
  accusations: {
    at: number; id: string; by: string; bySynthetic: boolean; accused: string; kind: string; detail: string;
    /** Its panel, and how its jurors voted (heard here), real and synthetic; `silent`: jurors heard voting neither way. */
    panel: { real: number; synthetic: number };
    guilty: { real: number; synthetic: number };
    innocent: { real: number; synthetic: number };
    silent: string[];
  }[];
  /** Guilty verdicts heard against cells that were neither injected nor of an injected cancer's lineage. */
  falseVerdicts: string[];
  /** Living cells in this process's census, each second. */
  samples: { t: number; living: number; real: number }[];
  marks: { t: number; label: string }[];
  notes: string[];
  shutdown: { leftovers: { pid: number; what: string }[] };
}

export async function runScaleHosts(o: ScaleHostsOptions): Promise<ScaleHostsResult> {
  if (o.real < 6) throw new CellularError('CLI_ERR_USAGE', '--real must be at least 6 (two per host and more)');
  if (o.cells < o.real) throw new CellularError('CLI_ERR_USAGE', '--cells must be at least --real');
  const t0 = Date.now();
  const at = () => Date.now() - t0;
  const marks: ScaleHostsResult['marks'] = [];
  const mark = (label: string) => {
    marks.push({ t: at(), label });
    o.progress(`== ${label}`);
  };
  const notes: string[] = [];
  const hosts = TestHosts.create({ count: 3, ...(o.loopback ? { loopback: true } : {}), say: o.progress });
  const id = `sh-${Math.random().toString(36).slice(2, 8)}`;
  const base = join(o.stateDir, id);
  const grown = new Map<string, Grown>();
  const cpu = o.separateCpu === false ? undefined : new HostCpu(id, hosts.hosts.map((h) => h.name));
  if (cpu && !cpu.separate) notes.push(`The test hosts share the machine's CPU: ${cpu.reason}.`);
  else if (cpu) {
    // This process holds the synthetic cells of SIM_HOSTS made-up hosts: it weighs as many.
    cpu.joinAs('synthetic', SIM_HOSTS);
    notes.push(`Each test host ran in its own CPU cgroup with an equal weight, and this process (the synthetic cells of ${SIM_HOSTS} made-up hosts) in one weighing ${SIM_HOSTS} hosts: a busy host gets its share while the others want theirs.`);
  }
  else notes.push('The test hosts shared the machine\'s CPU (--separate-cpu no).');
  let observer: Observer | undefined;
  let swarm: SyntheticSwarm | undefined;
  const timers: NodeJS.Timeout[] = [];
  let certWatch: LineageWatch | undefined;
  const emergency = () => {
    for (const g of grown.values()) killHost(g, id);
    hosts.close();
  };
  process.once('exit', emergency);
  const samples: ScaleHostsResult['samples'] = [];
  const leftovers: { pid: number; what: string }[] = [];
  try {
    const { dirs, first, token } = prepareHostDirs(hosts.hosts, base, id);
    // The echo cells come by perHost, not min: the seeding grow makes a tissue's min on its own
    // host, and each host's homeostasis brings its own share (docs/genome.md).
    const stems = 2;
    const sets = [
      'tissues.receiver=null', 'tissues.worker=null', 'tissues.dashboard=null', `tissues.stem.min=${stems}`,
      `tissues.echo.min=${hosts.hosts.length}`, `tissues.echo.max=${o.real + 20}`, `tissues.echo.perHost=${Math.ceil((o.real - stems) / hosts.hosts.length)}`, `limits.cellsPerHost=${Math.ceil(o.real / hosts.hosts.length) + 24}`, `limits.mitosisPerMinute=120`,
      `immune.jury=${o.jury}`, `broker.port=${BROKER_PORT}`, `broker.monitorPort=${MONITOR_PORT}`,
    ];
    const genome = loadGenome({ sets });
    const routes = hosts.hosts.map((h) => `${h.ip}:${ROUTE_PORT}`).join(',');
    mark(`grow on ${hosts.hosts.map((h) => h.name).join(', ')} (${hosts.mode}), ${o.real} real cells wanted`);
    for (const h of hosts.hosts) {
      grown.set(h.name, growOnHost({
        host: h, dir: dirs.get(h.name)!, organism: id, routes, routePort: ROUTE_PORT, sets, at, ...(cpu ? { cpu } : {}),
        onLine: (line) => {
          if (/^(organism \S+ is alive|JetStream:|error)/.test(line)) o.say?.(`[${h.name}] ${line}`);
        },
      }));
    }
    const alive = await within(Promise.all([...grown.values()].map((g) => g.alive)), 180_000, [false]);
    if (!alive.every(Boolean)) throw new CellularError('CELL_ERR_SPAWN', `not every host grew: ${[...grown.values()].map((g) => `${g.host.name}: ${g.lines.slice(-3).map((l) => l.line).join(' | ')}`).join('; ')}`);
    const servers = hosts.hosts.map((h) => `nats://${h.ip}:${BROKER_PORT}`);
    const user = await commandUser(first, id, 'grow', 'scale-hosts');
    const rootKey = loadOrCreateRootKey(first);
    observer = await Observer.open({
      servers, token, ...(user ? { user } : {}), tls: { ca: caPem(join(first, CA_CERT_FILE)) }, organism: id, rootPub: rootKey.pub, rootKey,
      limits: genome.limits, name: 'scale-hosts', voteDeadlineMs: genome.immune.voteDeadlineMs, jury: genome.immune.jury,
      // No pulses: its census comes from the host digests, as a cell's does (verifying every
      // synthetic cell's pulse here cost this process a third of a core).
      localHost: OBSERVER_HOST,
    });
    const obs = observer;
    const census = obs.census;
    const synthetic = new Set<string>();
    const isReal = (cellId: string) => !synthetic.has(cellId);
    /** How many of `ids` are real cells and how many synthetic. */
    const split = (ids: readonly string[]) => ({ real: ids.filter(isReal).length, synthetic: ids.length - ids.filter(isReal).length });
    /** Every cell process of the organism, on every host (one /proc: the hosts differ in their network only). */
    const processes = () => hosts.hosts.flatMap((h) => localCells(id, h.name));
    const living = () => census.living().filter((c) => c.state !== 'dead');
    const livingReal = () => living().filter((c) => isReal(c.id));
    timers.push(setInterval(() => samples.push({ t: at(), living: living().length, real: livingReal().length }), 1_000));

    // What the run hears: first hormones, accusations, votes, verdicts, births (for lineages).
    const firstSeen = new Map<string, number>();
    const accusedAt = new Map<string, number>();
    const accusations: ScaleHostsResult['accusations'] = [];
    const offenders = new Set<string>();
    const heard: Hormone[] = [];
    const parentOf = new Map<string, string>();
    /** `id` and its descendants, by the births and certificates heard so far. */
    const lineageHeard = (id: string) => lineageOf(id, [...parentOf].map(([cell, parent]) => ({ id: cell, parent })));
    obs.bus.on((h) => {
      if (!firstSeen.has(h.from)) firstSeen.set(h.from, Date.now());
      if (h.kind === 'accuse' || h.kind === 'vote' || h.kind === 'verdict' || h.kind === 'toxin') heard.push(h);
      if (h.kind === 'accuse') {
        const a = h.body as AccuseBody;
        if (!accusedAt.has(a.accused)) accusedAt.set(a.accused, Date.now());
        accusations.push({
          at: at(), id: a.id, by: h.from, bySynthetic: synthetic.has(h.from), accused: a.accused, kind: a.kind, detail: a.detail.slice(0, 160),
          panel: split(a.jury ?? []), guilty: split([]), innocent: split([]), silent: [...(a.jury ?? [])],
        });
      }
      if (h.kind === 'birth') {
        // The birth carries the certificate; the bus checked that it chains to the root.
        const parent = obs.certs.certOf(h.from)?.parent ?? ((h.body as { cert?: { parent?: unknown } }).cert?.parent);
        if (typeof parent === 'string') parentOf.set(h.from, parent);
      }
    });
    // Children's certificates as they are written (the immune system's own evidence of
    // cancer): when each parent first had more children than its certificate allows.
    const overBudgetAt = new Map<string, number>();
    const childrenOf = new Map<string, Map<string, number>>();
    certWatch = new LineageWatch({ lineage: openLineage(obs.nc, obs.ns).catch(() => undefined), certs: obs.certs, log: { warn: () => {} } });
    certWatch.on((cert) => {
      if (cert.parent === null) return;
      // Its lineage, before any child runs (a child killed before its birth hormone is still of it).
      parentOf.set(cert.cell, cert.parent);
      let kids = childrenOf.get(cert.parent);
      if (!kids) childrenOf.set(cert.parent, (kids = new Map()));
      kids.set(cert.cell, cert.born);
      // When it passed its budget: the birth time its parent wrote into its first child past
      // it (the certificate is written then), not when this watch heard of it (it lags here).
      const budget = obs.certs.certOf(cert.parent)?.budget;
      if (budget !== undefined && kids.size > budget) overBudgetAt.set(cert.parent, [...kids.values()].sort((a, b) => a - b)[budget]!);
    });
    certWatch.start();
    const condemnedAt = new Map<string, number>();
    const deadAt = new Map<string, number>();
    census.on((e) => {
      if (e.type !== 'state' || e.entry.state !== 'dead') return;
      if (!deadAt.has(e.entry.id)) deadAt.set(e.entry.id, Date.now());
      if (e.entry.cause === 'toxin' && !condemnedAt.has(e.entry.id)) condemnedAt.set(e.entry.id, Date.now());
    });

    // 1. Real cells grown by homeostasis.
    let lastSaid = 0;
    await waitFor(() => {
      const n = livingReal().filter((c) => c.state === 'alive').length;
      if (Date.now() - lastSaid > 10_000) {
        lastSaid = Date.now();
        o.progress(`  ${n} of ${o.real} real cells alive (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
      }
      return n >= o.real;
    }, 600_000, `${o.real} real cells alive`, o.signal);
    const perHostCount: Record<string, number> = {};
    for (const c of livingReal()) perHostCount[c.host] = (perHostCount[c.host] ?? 0) + 1;
    const grew = { seconds: Math.round(at() / 100) / 10, real: livingReal().length, perHost: perHostCount };
    mark(`${grew.real} real cells alive after ${grew.seconds} s: ${Object.entries(perHostCount).map(([h, n]) => `${h} ${n}`).join(', ')}`);

    // 2. Synthetic cells, voting, to the full census.
    const count = Math.max(0, o.cells - grew.real);
    swarm = new SyntheticSwarm({ nc: obs.nc, ns: obs.ns, lineage: await openLineage(obs.nc, obs.ns), genome, rootKey: rootKey.privateKey, count, hosts: SIM_HOSTS, steady: true, immune: { rootPub: rootKey.pub } });
    await swarm.start();
    for (const c of swarm.cells) synthetic.add(c.signer.id);
    const syntheticCensus = swarm.immune!.census;
    await waitFor(() => living().length >= o.cells && syntheticCensus.living().length >= o.cells, 120_000, `${o.cells} cells in the census`, o.signal);
    mark(`${living().length} cells in the census (${count} synthetic on ${SIM_HOSTS} made-up hosts)`);

    // 3. Idle: CPU of everything over a window, then every real cell's census against the truth.
    await sleep(o.settleS * 1000, undefined, { signal: o.signal });
    const pidsOf = () => {
      const cells = processes().map((c) => c.pid);
      const brokers = [...grown.values()].map((g) => readRecord(g.dir)?.broker?.pid).filter((p): p is number => typeof p === 'number');
      const grows = [...grown.values()].map((g) => g.child.pid).filter((p): p is number => typeof p === 'number');
      return { cells, brokers, grows };
    };
    const read = (pids: number[]) => new Map(pids.map((p) => [p, readCpuMicros(p) ?? 0]));
    type Stat = { hormones?: { accepted?: number }; census?: { version?: number; digests?: number; rows?: number; living?: number; gapsAsked?: number }; homeostasis?: { plans?: number; views?: number } | null };
    /** A cell's stats reply; undefined if it did not answer. */
    const statOf = (id: string) => obs.nc.request(obs.ns.cell(id, 'stats'), new Uint8Array(0), { timeout: 5_000 }).then((m) => openReply<Stat>(m.data), () => undefined);
    const sampled = livingReal().filter((c) => c.state === 'alive' && c.tissue === 'echo').slice(0, 5);
    const statsOf = () => Promise.all(sampled.map((c) => statOf(c.id)));
    const idleChurn: Record<string, number> = {};
    const offChurn = census.on((e) => {
      const k = `${synthetic.has(e.entry.id) ? 'synthetic' : 'real'} ${e.type === 'state' ? `${e.from}→${e.entry.state}` : e.type}`;
      idleChurn[k] = (idleChurn[k] ?? 0) + 1;
    });
    const s0 = await statsOf();
    const p0 = pidsOf();
    const all0 = read([...p0.cells, ...p0.brokers, ...p0.grows]);
    const self0 = process.cpuUsage();
    const w0 = Date.now();
    await sleep(o.seconds * 1000, undefined, { signal: o.signal });
    const all1 = read([...p0.cells, ...p0.brokers, ...p0.grows]);
    const self1 = process.cpuUsage(self0);
    const secs = (Date.now() - w0) / 1000;
    const s1 = await statsOf();
    offChurn();
    if (Object.keys(idleChurn).length > 0) o.progress(`  the run's census over the window: ${Object.entries(idleChurn).map(([k, n]) => `${n} ${k}`).join(', ')}`);
    const rate = (get: (x: Stat) => number | undefined) => {
      const each = sampled.flatMap((_c, i) => {
        const a = s0[i] && get(s0[i]!);
        const b = s1[i] && get(s1[i]!);
        return typeof a === 'number' && typeof b === 'number' ? [(b - a) / secs] : [];
      });
      return each.length ? r1(each.reduce((n, x) => n + x, 0) / each.length) : 0;
    };
    const perCellRates = sampled.length === 0 ? null : {
      hormones: rate((x) => x.hormones?.accepted), digests: rate((x) => x.census?.digests), rows: rate((x) => x.census?.rows),
      censusChanges: rate((x) => x.census?.version), plans: rate((x) => x.homeostasis?.plans), views: rate((x) => x.homeostasis?.views),
      // Whole digests asked after a lost or late round: each brings a host's every row.
      gapsAsked: rate((x) => x.census?.gapsAsked),
    };
    const delta = (pids: number[]) => pids.reduce((n, p) => n + Math.max(0, (all1.get(p) ?? 0) - (all0.get(p) ?? 0)), 0) / 1000 / secs;
    const idle = {
      seconds: Math.round(secs * 10) / 10, cells: r1(delta(p0.cells)), brokers: r1(delta(p0.brokers)), grows: r1(delta(p0.grows)),
      synthetic: r1((self1.user + self1.system) / 1000 / secs), total: 0, perRealCell: 0,
    };
    idle.total = r1(idle.cells + idle.brokers + idle.grows + idle.synthetic);
    idle.perRealCell = r1(idle.cells / Math.max(1, p0.cells.length));
    if (perCellRates) o.progress(`  a real cell, per second: ${perCellRates.hormones} hormones, ${perCellRates.digests} digest parts, ${perCellRates.rows} rows, ${perCellRates.censusChanges} census changes, ${perCellRates.plans} plans, ${perCellRates.views} views derived, ${perCellRates.gapsAsked} whole digests asked`);
    mark(`idle: real cells ${idle.cells} ms/s (${idle.perRealCell} per cell), brokers ${idle.brokers}, grows ${idle.grows}, synthetic process ${idle.synthetic}`);
    const truth = livingReal().length + synthetic.size;
    const asked = livingReal().filter((c) => c.state === 'alive');
    const answers = await Promise.all(asked.map(async (c) => (await statOf(c.id))?.census?.living));
    const offs = answers.filter((n): n is number => typeof n === 'number').map((n) => n - truth);
    const agreement = { asked: asked.length, answered: offs.length, truth, maxOff: offs.reduce((m, x) => Math.max(m, Math.abs(x)), 0), offs: [...new Set(offs)].sort((a, b) => a - b) };
    mark(`census agreement: ${agreement.answered} of ${agreement.asked} real cells answered; furthest ${agreement.maxOff} from ${truth}`);

    // 4. kill -9 of real cells, one at a time.
    const kills: ScaleHostsResult['kills'] = [];
    const cellViewDead = new Map<string, number>();
    syntheticCensus.on((e) => e.type === 'state' && e.entry.state === 'dead' && !cellViewDead.has(e.entry.id) && cellViewDead.set(e.entry.id, Date.now()));
    for (let k = 0; k < o.kills; k++) {
      throwIfAborted(o.signal);
      const victims = livingReal().filter((c) => c.state === 'alive' && c.tissue === 'echo' && isAlive(c.pid));
      const victim = victims[Math.floor(Math.random() * victims.length)];
      if (!victim) break;
      // A death heard before the kill (silence judged under load, then alive again) is not this one.
      deadAt.delete(victim.id);
      cellViewDead.delete(victim.id);
      try {
        process.kill(victim.pid, 'SIGKILL');
      } catch {
        continue;
      }
      const killedAt = Date.now();
      await waitFor(() => deadAt.has(victim.id) && cellViewDead.has(victim.id), 15_000, `${victim.id} dead in both censuses`, o.signal).catch(() => undefined);
      const seen = (m: Map<string, number>) => (m.has(victim.id) ? m.get(victim.id)! - killedAt : null);
      kills.push({ cell: victim.id, host: victim.host, observerMs: seen(deadAt), cellViewMs: seen(cellViewDead) });
      o.progress(`  kill ${k + 1}/${o.kills}: ${victim.id}@${victim.host} dead in the run's census after ${seen(deadAt)} ms, in the synthetic cells' after ${seen(cellViewDead)} ms`);
      await sleep(2_000, undefined, { signal: o.signal });
    }
    const killDist = {
      observer: kills.some((x) => x.observerMs !== null) ? distribution(kills.flatMap((x) => (x.observerMs === null ? [] : [x.observerMs]))) : null,
      cellView: kills.some((x) => x.cellViewMs !== null) ? distribution(kills.flatMap((x) => (x.cellViewMs === null ? [] : [x.cellViewMs]))) : null,
    };

    // 5. A flooder and a cancer, injected through a host's operator as the dashboard does.
    const dashboardToken = loadOrCreateDashboardToken(first);
    const offences: Offence[] = [];
    for (const [i, fault] of (o.faults ?? (['flood', 'cancer'] as const)).entries()) {
      throwIfAborted(o.signal);
      const host = hosts.hosts[i % hosts.hosts.length]!;
      mark(`${fault} injected on ${host.name}`);
      const answer = openReply<{ message: string }>((await obs.nc.request(obs.ns.operatorOn(host.name), pack(signControl(dashboardToken, id, 'scale-hosts', { action: 'inject', tissue: 'echo', fault })), { timeout: 15_000 })).data).message;
      const m = /^spawned (\S+) \(pid (\d+)\)/.exec(answer);
      if (!m) throw new CellularError('CELL_ERR_SPAWN', `the operator on ${host.name} did not inject: ${answer}`);
      const cell = m[1]!;
      // Its lineage among the births heard so far.
      const lineage = () => lineageHeard(cell);
      const processesOf = () => {
        const l = lineage();
        return processes().filter((p) => l.has(p.cell));
      };
      offenders.add(cell);
      // Both waited for at once: each time is when it happened, not when the other wait ended
      // (a run whose witness never condemned once read 30 s, the wait's end, as "dead").
      let gone: number | null = null;
      // Each process of its lineage: when first and last seen (the last to go says what held the lineage up).
      const seen = new Map<string, { pid: number; first: number; last: number }>();
      const lineageLeft = () => {
        const now = Date.now();
        const left = processesOf();
        for (const p of left) {
          const s = seen.get(p.cell) ?? { pid: p.pid, first: now, last: now };
          s.last = now;
          seen.set(p.cell, s);
        }
        return left.length;
      };
      await Promise.all([
        waitFor(() => condemnedAt.has(cell), 30_000, `the ${fault} ${cell} condemned`, o.signal).catch(() => undefined),
        waitFor(() => lineageLeft() === 0, 30_000, `the ${fault} ${cell}'s processes gone`, o.signal).then(() => (gone = Date.now()), () => undefined),
      ]);
      if (fault === 'cancer') {
        const toxined = new Map(heard.filter((h) => h.kind === 'toxin').map((h) => [(h.body as ToxinBody).cell, h.ts]));
        const last = [...seen].sort((a, b) => b[1].last - a[1].last).slice(0, 4);
        const rel = (t: number) => (condemnedAt.has(cell) ? `${t - condemnedAt.get(cell)!} ms` : `${t} (no verdict)`);
        o.progress(`  the cancer's last processes, from its verdict: ${last.map(([id, x]) => `${id} (pid ${x.pid}) seen ${rel(x.first)} … ${rel(x.last)}, ${toxined.has(id) ? `toxin at ${rel(toxined.get(id)!)}` : 'no toxin heard'}`).join('; ')}`);
      }
      if (gone === null) {
        // Who outlived the wait, and what this run's census says of each.
        const left = processesOf().slice(0, 6).map((p) => `${p.cell} (pid ${p.pid}, ${census.get(p.cell)?.state ?? 'not in the census'}, ${condemnedAt.has(p.cell) ? 'condemned' : 'not condemned'})`);
        o.progress(`  the ${fault}'s lineage still running after 30 s: ${left.join(', ')}`);
      }
      for (const x of lineage()) offenders.add(x);
      // The accuser's verdict may come a moment after the kill.
      await waitFor(() => heard.some((h) => h.kind === 'verdict' && (h.body as VerdictBody).accused === cell && (h.body as VerdictBody).guilty), 3_000, 'the verdict', o.signal).catch(() => undefined);
      const onset = firstSeen.get(cell) ?? null;
      const accusation = heard.find((h) => h.kind === 'verdict' && (h.body as VerdictBody).accused === cell && (h.body as VerdictBody).guilty);
      const verdict = accusation?.body as VerdictBody | undefined;
      const accuse = heard.find((h) => h.kind === 'accuse' && (h.body as AccuseBody).id === verdict?.accusation)?.body as AccuseBody | undefined;
      const panel = accuse?.jury ?? [];
      const votes = heard.filter((h) => h.kind === 'vote' && (h.body as VoteBody).accusation === verdict?.accusation && (h.body as VoteBody).guilty);
      const off: Offence = {
        fault, cell, host: host.name,
        quarantinedMs: onset !== null && condemnedAt.has(cell) ? condemnedAt.get(cell)! - onset : null,
        deadMs: onset !== null && gone !== null ? gone - onset : null,
        offenceMs: onset !== null && overBudgetAt.has(cell) ? overBudgetAt.get(cell)! - onset : null,
        accusedMs: onset !== null && accusedAt.has(cell) ? accusedAt.get(cell)! - onset : null,
        lineage: lineage().size,
        jury: { size: panel.length, ...split(panel) },
        guiltyVotes: split(votes.map((v) => v.from)),
        verdict: verdict ? `${verdict.kind}: ${verdict.votes} of ${verdict.jury} (needed ${verdict.needed})` : 'none heard',
      };
      offences.push(off);
      o.progress(`  ${fault} ${cell}: accused ${off.accusedMs} ms, quarantined ${off.quarantinedMs} ms, dead ${off.deadMs} ms after onset; panel ${off.jury.synthetic} synthetic + ${off.jury.real} real; guilty votes ${off.guiltyVotes.synthetic} synthetic + ${off.guiltyVotes.real} real; ${off.verdict}${fault === 'cancer' ? `; lineage of ${off.lineage}; past its budget ${off.offenceMs} ms after onset` : ''}`);
      await sleep(3_000, undefined, { signal: o.signal });
    }
    const syntheticStats = swarm.immune!.stats();
    // How each accusation's panel voted, as heard here: a trial that failed says whom it lacked.
    for (const a of accusations) {
      const votes = heard.filter((h) => h.kind === 'vote' && (h.body as VoteBody).accusation === a.id);
      const by = (guilty: boolean) => votes.filter((v) => (v.body as VoteBody).guilty === guilty).map((v) => v.from);
      a.guilty = split(by(true));
      a.innocent = split(by(false));
      const voted = new Set(votes.map((v) => v.from));
      a.silent = a.silent.filter((j) => !voted.has(j)).map((j) => `${j}${synthetic.has(j) ? ' (synthetic)' : ''}`);
    }
    for (const a of accusations.filter((x) => offences.some((f) => f.cell === x.accused || parentChainHas(x.accused, new Set([f.cell]), parentOf))).slice(0, 12)) {
      const jury = (heard.find((h) => h.kind === 'accuse' && (h.body as AccuseBody).id === a.id)?.body as AccuseBody | undefined)?.jury ?? [];
      const kin = lineageHeard(a.accused);
      const past = overBudgetAt.get(a.accused);
      o.progress(`  accusation ${a.id} of ${a.accused} (${a.kind}) at ${a.at} ms${past !== undefined ? ` (${t0 + a.at - past} ms after it passed its budget)` : ''}: panel ${a.panel.real} real + ${a.panel.synthetic} synthetic (${jury.filter((j) => kin.has(j)).length} of the accused's lineage); guilty ${a.guilty.real} + ${a.guilty.synthetic}, innocent ${a.innocent.real} + ${a.innocent.synthetic}; silent: ${a.silent.join(', ') || 'none'}`);
    }
    const falseVerdicts = [...new Set(heard.filter((h) => h.kind === 'verdict' && (h.body as VerdictBody).guilty && !offenders.has((h.body as VerdictBody).accused) && !parentChainHas((h.body as VerdictBody).accused, offenders, parentOf)).map((h) => `${(h.body as VerdictBody).accused} (${(h.body as VerdictBody).kind})`))];
    notes.push(`Synthetic cells share one process, one bus (a signature checked once for all), one census and one verdict write per accusation (docs/benchmarks.md, "scale across hosts"); each runs its own immune system and signs its own hormones.`);
    return {
      mode: hosts.mode, fallbackReason: hosts.fallbackReason,
      options: { cells: o.cells, real: o.real, kills: o.kills, jury: o.jury, seconds: o.seconds, pulseIntervalMs: genome.limits.pulseIntervalMs },
      grew, census: { total: living().length, synthetic: synthetic.size, real: livingReal().length, simHosts: SIM_HOSTS }, idle, perCellRates, idleChurn, agreement, kills, killDist, offences, synthetic: syntheticStats, accusations, falseVerdicts,
      samples, marks, notes, shutdown: { leftovers },
    };
  } finally {
    for (const t of timers) clearInterval(t);
    certWatch?.close();
    await swarm?.close().catch(() => undefined);
    for (const what of await stopHosts(grown.values(), id, observer, 'scale-hosts run over', 30_000)) leftovers.push({ pid: Number(/pid (\d+)/.exec(what)?.[1] ?? 0), what });
    for (const left of (await cpu?.close()) ?? []) notes.push(`A host's CPU cgroup was not removed: ${left}.`);
    hosts.close();
    process.removeListener('exit', emergency);
  }
}

/** Whether `cell` descends from one of `from` (births heard). */
function parentChainHas(cell: string, from: ReadonlySet<string>, parentOf: ReadonlyMap<string, string>): boolean {
  for (let c: string | undefined = cell, hops = 0; c !== undefined && hops < 64; c = parentOf.get(c), hops++) if (from.has(c)) return true;
  return false;
}

const r1 = (v: number) => Math.round(v * 10) / 10;
