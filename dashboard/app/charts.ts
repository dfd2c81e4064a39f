/**
 * Time series (uPlot): population and stress per tissue, messages delivered per second with
 * the delivery p99, CPU and RSS per host. One point per second from the dashboard cell; a
 * chart is rebuilt only when its set of series changes (a new tissue or host).
 */
import uPlot from 'uplot';
import type { SeriesPoint } from '../../organism/wire/dashboard-frames.ts';
import { colourOf, h } from './dom.ts';

interface ChartSpec {
  id: string;
  title: string;
  /** Series names for a set of points. */
  keys(points: readonly SeriesPoint[]): string[];
  value(p: SeriesPoint, key: string): number | null;
  colour(key: string, i: number): string;
  /** Which y scale each key uses (default `y`). */
  scale?(key: string): string;
  axes?: uPlot.Axis[];
}

const HOST_COLOURS = ['#6cb6ff', '#5fd38d', '#f5c04a', '#c58af9', '#ff9e64', '#4fd6be'];
const keysOf = (pick: (p: SeriesPoint) => Record<string, number>) => (ps: readonly SeriesPoint[]) => [...new Set(ps.flatMap((p) => Object.keys(pick(p))))].sort();

const SPECS: ChartSpec[] = [
  { id: 'population', title: 'Population per tissue', keys: keysOf((p) => p.population), value: (p, k) => p.population[k] ?? 0, colour: (k) => colourOf(k) },
  { id: 'stress', title: 'Stress per tissue (0–1)', keys: keysOf((p) => p.stress), value: (p, k) => p.stress[k] ?? null, colour: (k) => colourOf(k) },
  {
    id: 'messages', title: 'Messages delivered /s and delivery p99 (ms)', keys: () => ['delivered/s', 'p99 ms'],
    value: (p, k) => (k === 'p99 ms' ? p.p99 : p.delivered), colour: (_k, i) => (i === 0 ? '#6cb6ff' : '#ff9e64'), scale: (k) => (k === 'p99 ms' ? 'ms' : 'y'),
    axes: [{ stroke: '#8a909c', grid: { stroke: '#2a2f3a' } }, { stroke: '#8a909c', grid: { stroke: '#2a2f3a' } }, { scale: 'ms', side: 1, stroke: '#ff9e64', grid: { show: false } }],
  },
  { id: 'cpu', title: 'CPU per host (% of one core, all cells)', keys: keysOf((p) => p.cpu), value: (p, k) => p.cpu[k] ?? null, colour: (_k, i) => HOST_COLOURS[i % HOST_COLOURS.length]! },
  { id: 'rss', title: 'RSS per host (MiB, all cells)', keys: keysOf((p) => p.rss), value: (p, k) => (p.rss[k] === undefined ? null : Math.round(p.rss[k]! / 1_048_576)), colour: (_k, i) => HOST_COLOURS[i % HOST_COLOURS.length]! },
];

export class Charts {
  readonly #el: HTMLElement;
  readonly #max: number;
  readonly #points: SeriesPoint[] = [];
  readonly #charts = new Map<string, { plot: uPlot; keys: string; box: HTMLElement }>();

  constructor(el: HTMLElement, max: number) {
    this.#el = el;
    this.#max = max;
    for (const s of SPECS) {
      const box = h('div', { class: 'chart', id: `chart-${s.id}` }, h('h3', {}, s.title));
      el.append(box);
    }
  }

  reset(points: readonly SeriesPoint[]): void {
    this.#points.splice(0, this.#points.length, ...points.slice(-this.#max));
    this.#draw();
  }

  add(p: SeriesPoint): void {
    this.#points.push(p);
    if (this.#points.length > this.#max) this.#points.shift();
    this.#draw();
  }

  #draw(): void {
    const width = Math.max(240, this.#el.clientWidth - 16);
    const xs = this.#points.map((p) => p.ts / 1000);
    for (const spec of SPECS) {
      const keys = spec.keys(this.#points);
      const data = [xs, ...keys.map((k) => this.#points.map((p) => spec.value(p, k)))] as uPlot.AlignedData;
      const current = this.#charts.get(spec.id);
      if (current && current.keys === keys.join('|')) {
        if (current.plot.width !== width) current.plot.setSize({ width, height: 110 });
        current.plot.setData(data);
        continue;
      }
      current?.plot.destroy();
      const box = document.getElementById(`chart-${spec.id}`)!;
      const plot = new uPlot({
        width, height: 110, legend: { show: true, live: false }, cursor: { drag: { x: false, y: false } },
        scales: { x: { time: true }, ...(spec.scale ? { ms: { auto: true } } : {}) },
        axes: spec.axes ?? [{ stroke: '#8a909c', grid: { stroke: '#2a2f3a' } }, { stroke: '#8a909c', grid: { stroke: '#2a2f3a' } }],
        series: [{}, ...keys.map((k, i) => ({ label: k, stroke: spec.colour(k, i), width: 1.5, scale: spec.scale?.(k) ?? 'y', spanGaps: true }))],
      }, data, box);
      this.#charts.set(spec.id, { plot, keys: keys.join('|'), box });
    }
  }
}
