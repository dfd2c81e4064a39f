/**
 * Prometheus metrics on the dashboard cell (`GET /metrics`, text format, prom-client):
 * population, stress, decisions, verdicts, hormones, message rate and delivery latency,
 * CPU and memory per host, and the dashboard process's own. A registry of its own, so
 * nothing global leaks between cells or tests.
 */
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { CensusEntry } from '../../organism/kernel/census.ts';
import type { SeriesPoint, SwarmEvent } from '../../organism/wire/dashboard-frames.ts';

export class Metrics {
  readonly registry = new Registry();
  readonly #cells = new Gauge({ name: 'cellular_cells', help: 'Cells in the census, by tissue and state', labelNames: ['tissue', 'state'], registers: [this.registry] });
  readonly #stress = new Gauge({ name: 'cellular_stress', help: 'Tissue stress (mean smoothed load of its alive cells), 0 to 1', labelNames: ['tissue'], registers: [this.registry] });
  readonly #decisions = new Counter({ name: 'cellular_decisions_total', help: 'Homeostasis decisions heard, by tissue and action', labelNames: ['tissue', 'action'], registers: [this.registry] });
  readonly #verdicts = new Counter({ name: 'cellular_verdicts_total', help: 'Immune verdicts heard, by evidence kind and outcome', labelNames: ['kind', 'outcome'], registers: [this.registry] });
  readonly #accusations = new Counter({ name: 'cellular_accusations_total', help: 'Accusations heard, by evidence kind', labelNames: ['kind'], registers: [this.registry] });
  readonly #deaths = new Counter({ name: 'cellular_deaths_total', help: 'Deaths heard or concluded, by cause', labelNames: ['cause'], registers: [this.registry] });
  readonly #hormones = new Counter({ name: 'cellular_hormones_total', help: 'Verified hormones the dashboard cell admitted, by kind', labelNames: ['kind'], registers: [this.registry] });
  readonly #delivered = new Gauge({ name: 'cellular_messages_delivered_per_second', help: 'Chat messages pushed to sockets per second, all receivers', registers: [this.registry] });
  readonly #p99 = new Gauge({ name: 'cellular_delivery_p99_seconds', help: "Worst receiver's delivery latency p99 over its last 10 s (stored to pushed)", registers: [this.registry] });
  readonly #cpu = new Gauge({ name: 'cellular_host_cpu_percent', help: 'Summed CPU percent of the living cells on a host (100 = one core)', labelNames: ['host'], registers: [this.registry] });
  readonly #rss = new Gauge({ name: 'cellular_host_rss_bytes', help: 'Summed resident memory of the living cells on a host', labelNames: ['host'], registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'cellular_dashboard_' });
  }

  hormone(kind: string): void {
    this.#hormones.inc({ kind });
  }

  event(e: SwarmEvent): void {
    const d = e.data ?? {};
    if (e.kind === 'decision') this.#decisions.inc({ tissue: e.tissue ?? '', action: String(d.action) });
    else if (e.kind === 'verdict') this.#verdicts.inc({ kind: String(d.kind), outcome: d.guilty ? 'guilty' : 'acquitted' });
    else if (e.kind === 'accuse') this.#accusations.inc({ kind: String(d.kind) });
    else if (e.kind === 'death') this.#deaths.inc({ cause: String(d.cause) });
    else if (e.kind === 'state' && d.to === 'dead') this.#deaths.inc({ cause: String(d.cause) });
  }

  /** Each second: the census and the series point. */
  update(census: readonly CensusEntry[], p: SeriesPoint): void {
    this.#cells.reset();
    for (const c of census) this.#cells.inc({ tissue: c.tissue, state: c.state });
    this.#stress.reset();
    for (const [tissue, s] of Object.entries(p.stress)) this.#stress.set({ tissue }, s);
    this.#delivered.set(p.delivered);
    if (p.p99 !== null) this.#p99.set(p.p99 / 1000);
    this.#cpu.reset();
    this.#rss.reset();
    for (const [host, v] of Object.entries(p.cpu)) this.#cpu.set({ host }, v);
    for (const [host, v] of Object.entries(p.rss)) this.#rss.set({ host }, v);
  }
}
