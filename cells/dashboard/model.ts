/**
 * What the dashboard knows of the swarm: the census as compact rows, the event log (every
 * hormone worth a line, with the numbers behind it), and one time-series point per second.
 * Bounded by the genome (dashboard.eventsMax, dashboard.seriesPoints).
 */
import type { CensusEntry, CensusEvent } from '../../organism/kernel/census.ts';
import type { ControlRecord } from '../../organism/wire/control.ts';
import { describeControl } from '../../organism/wire/control.ts';
import type { Hormone } from '../../organism/kernel/hormone.ts';
import { tissueStress } from '../../organism/kernel/stress.ts';
import type { AccuseBody, BirthBody, DeathBody, DecisionBody, DifferentiateBody, ShutdownBody, ToxinBody, VerdictBody, VoteBody } from '../../organism/kernel/vocabulary.ts';
import type { CellRow, EventKind, SeriesPoint, SwarmEvent } from '../../organism/wire/dashboard-frames.ts';

export function rowOf(e: CensusEntry): CellRow {
  return {
    id: e.id, tissue: e.tissue, host: e.host, parent: e.parent, state: e.state, load: e.load, smoothed: e.smoothed,
    cpu: Math.round(e.cpu * 10) / 10, rss: e.rss, lag: Math.round(e.lag), born: e.born, pid: e.pid, url: e.url, cause: e.cause, died: e.died,
    inflight: e.work.inflight, handled: e.work.handled,
  };
}

const round = (n: number, d = 3) => Math.round(n * 10 ** d) / 10 ** d;

/** A hormone as an event-log line, or undefined for what is not worth one (pulses, mitosis). */
export function eventOf(h: Hormone, certTissue: (id: string) => string | null): Omit<SwarmEvent, 'n'> | undefined {
  const at = { ts: h.ts, from: h.from };
  switch (h.kind) {
    case 'birth': {
      const b = h.body as BirthBody;
      const cert = b.cert as { tissue?: unknown; parent?: unknown; host?: unknown; generation?: unknown };
      const tissue = typeof cert.tissue === 'string' ? cert.tissue : certTissue(h.from);
      const parent = typeof cert.parent === 'string' ? cert.parent : null;
      return { ...at, kind: 'birth', cells: parent ? [h.from, parent] : [h.from], tissue, text: `${h.from} born (${tissue ?? '?'}, pid ${b.pid}${parent ? `, child of ${parent}` : ', made by root'}${typeof cert.host === 'string' ? ` on ${cert.host}` : ''})`, data: { pid: b.pid, parent, generation: typeof cert.generation === 'number' ? cert.generation : null } };
    }
    case 'death': {
      const b = h.body as DeathBody;
      return { ...at, kind: 'death', cells: [h.from], tissue: certTissue(h.from), text: `${h.from} died: ${b.cause}${b.detail ? ` — ${b.detail}` : ''}`, data: { cause: b.cause, pid: b.pid } };
    }
    case 'decision': {
      const b = h.body as DecisionBody;
      const cells = b.cells.length > 0 ? `: ${b.cells.join(', ')}` : '';
      return { ...at, kind: 'decision', cells: [h.from, ...b.cells], tissue: b.tissue, text: `${b.tissue}: ${b.action} ×${b.count}${cells} — ${b.reason}`, data: { action: b.action, epoch: b.epoch, ...b.readings } };
    }
    case 'differentiate': {
      const b = h.body as DifferentiateBody;
      return { ...at, kind: 'differentiate', cells: [h.from, b.by], tissue: b.tissue, text: `${h.from} differentiated into ${b.tissue} (recruited by ${b.by})`, data: { epoch: b.epoch } };
    }
    case 'accuse': {
      const b = h.body as AccuseBody;
      return { ...at, kind: 'accuse', cells: [b.accused, h.from], tissue: certTissue(b.accused), text: `${h.from} accuses ${b.accused} of ${b.kind}${b.lineage ? ' (and its lineage)' : ''}: ${b.detail}`, data: { accusation: b.id, kind: b.kind } };
    }
    case 'vote': {
      const b = h.body as VoteBody;
      return { ...at, kind: 'vote', cells: [b.accused, h.from], tissue: certTissue(b.accused), text: `${h.from} votes ${b.guilty ? 'guilty' : 'innocent'} on ${b.accused}${b.detail ? `: ${b.detail}` : ''}`, data: { accusation: b.accusation, guilty: b.guilty } };
    }
    case 'verdict': {
      const b = h.body as VerdictBody;
      return {
        ...at, kind: 'verdict', cells: [b.accused, ...b.condemned.filter((c) => c !== b.accused)], tissue: certTissue(b.accused),
        text: `${b.accused} ${b.guilty ? 'GUILTY' : 'acquitted'} of ${b.kind}: ${b.votes} guilty, ${b.against} innocent of a jury of ${b.jury} (needed ${b.needed})${b.condemned.length > 1 ? `; condemned ${b.condemned.join(', ')}` : ''}`,
        data: { accusation: b.accusation, kind: b.kind, guilty: b.guilty, votes: b.votes, against: b.against, jury: b.jury, needed: b.needed },
      };
    }
    case 'toxin': {
      const b = h.body as ToxinBody;
      return { ...at, kind: 'toxin', cells: [b.cell, h.from], tissue: certTissue(b.cell), text: `${h.from} killed ${b.cell} (pid ${b.pid} on ${b.host}) with a toxin`, data: { accusation: b.accusation, pid: b.pid } };
    }
    case 'shutdown': {
      const b = h.body as ShutdownBody;
      return { ...at, kind: 'shutdown', cells: [], tissue: null, text: `shutdown by ${h.from}: ${b.reason}`, data: null };
    }
    default:
      return undefined;
  }
}

export function controlEvent(r: ControlRecord): Omit<SwarmEvent, 'n'> {
  const cells = r.control.action === 'kill' ? [r.control.cell] : [];
  const tissue = 'tissue' in r.control ? r.control.tissue : null;
  return { ts: r.ts, from: r.by, kind: 'control', cells, tissue, text: `${describeControl(r.control)}: ${r.ok ? r.message : `refused — ${r.message}`}`, data: { ok: r.ok } };
}

/** A census conclusion (suspect, dead by silence or vanished): the census speaks, not a hormone. */
export function censusEvent(e: CensusEvent): Omit<SwarmEvent, 'n'> | undefined {
  if (e.type !== 'state') return undefined;
  const to = e.entry.state;
  // Announced deaths come with their own hormone; only what the census concluded is new.
  if (to === 'dead' && e.entry.cause !== 'missed-pulses' && e.entry.cause !== 'vanished' && e.entry.cause !== 'toxin') return undefined;
  if (to === 'draining') return undefined;
  const why = to === 'dead' ? ` (${e.entry.cause})` : '';
  return { ts: Date.now(), from: 'census', kind: 'state', cells: [e.entry.id], tissue: e.entry.tissue, text: `${e.entry.id} ${e.from} → ${to}${why}`, data: { from: e.from, to, cause: e.entry.cause } };
}

export class SwarmModel {
  readonly #eventsMax: number;
  readonly #seriesMax: number;
  readonly events: SwarmEvent[] = [];
  readonly series: SeriesPoint[] = [];
  #n = 0;

  constructor(o: { eventsMax: number; seriesPoints: number }) {
    this.#eventsMax = o.eventsMax;
    this.#seriesMax = o.seriesPoints;
  }

  /** The ordinal of the newest event (pages ask for what came after theirs). */
  get last(): number {
    return this.#n;
  }

  add(e: Omit<SwarmEvent, 'n'>): SwarmEvent {
    const event = { ...e, n: ++this.#n, text: e.text.slice(0, 600) };
    this.events.push(event);
    if (this.events.length > this.#eventsMax) this.events.splice(0, this.events.length - this.#eventsMax);
    return event;
  }

  since(n: number): SwarmEvent[] {
    // Events are in ordinal order: find the first newer one from the end (ticks ask for few).
    let i = this.events.length;
    while (i > 0 && this.events[i - 1]!.n > n) i--;
    return this.events.slice(i);
  }

  /** Events that concern `cell`, newest last. */
  about(cell: string, kinds?: readonly EventKind[]): SwarmEvent[] {
    return this.events.filter((e) => e.cells.includes(cell) && (kinds === undefined || kinds.includes(e.kind)));
  }

  point(living: readonly CensusEntry[], delivered: number, p99: number | null, now = Date.now()): SeriesPoint {
    const population: Record<string, number> = {};
    const cpu: Record<string, number> = {};
    const rss: Record<string, number> = {};
    for (const c of living) {
      population[c.tissue] = (population[c.tissue] ?? 0) + 1;
      cpu[c.host] = round((cpu[c.host] ?? 0) + c.cpu, 1);
      rss[c.host] = (rss[c.host] ?? 0) + c.rss;
    }
    const stress = Object.fromEntries(Object.entries(tissueStress(living)).map(([t, s]) => [t, round(s)]));
    const p: SeriesPoint = { ts: now, population, stress, delivered: round(delivered, 1), p99: p99 === null ? null : round(p99, 1), cpu, rss };
    this.series.push(p);
    if (this.series.length > this.#seriesMax) this.series.splice(0, this.series.length - this.#seriesMax);
    return p;
  }
}
