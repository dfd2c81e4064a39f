/**
 * The swarm as a force-directed graph (force-graph, on a canvas): one node per cell,
 * coloured by tissue, sized by load, outlined by state; lineage as edges (parent → child);
 * cells pulled towards their host's centre so hosts form groups. Births ring outwards,
 * deaths grey out and fade, a quarantine flashes red.
 */
import ForceGraph from 'force-graph';
import type { CellRow } from '../../organism/wire/dashboard-frames.ts';
import { colourOf } from './dom.ts';

/** A census row as the graph draws it, with the simulation's own fields. */
interface CellNode extends Pick<CellRow, 'id' | 'tissue' | 'host' | 'parent' | 'state' | 'load'> {
  /** Page time the node appeared (a birth ring while young), or 0 for what was there at load. */
  appeared: number;
  /** Page time of a quarantine or toxin flash. */
  flash: number;
  x?: number;
  y?: number;
  vx?: number;
  vy?: number;
}

interface LineageLink {
  source: string | CellNode;
  target: string | CellNode;
}

const RING_MS = 1_500;
const FLASH_MS = 2_500;

export class SwarmGraph {
  readonly #graph: ForceGraph<CellNode, LineageLink>;
  readonly #nodes = new Map<string, CellNode>();
  #hosts: string[] = [];
  #shape = '';
  #first = true;
  frames = 0;

  constructor(el: HTMLElement, onClick: (id: string) => void) {
    const graph = new ForceGraph<CellNode, LineageLink>(el)
      .backgroundColor('#171a21')
      .nodeId('id')
      .nodeLabel((n) => `${n.id} · ${n.tissue} · ${n.state} · load ${n.load.toFixed(2)} · ${n.host}`)
      .nodeVal((n) => 1 + n.load * 4)
      .linkColor(() => 'rgba(160,170,190,0.35)')
      .linkDirectionalArrowLength(3)
      .linkDirectionalArrowRelPos(1)
      .cooldownTicks(200)
      .autoPauseRedraw(false)
      .onNodeClick((n) => onClick(n.id))
      .nodeCanvasObject((n, ctx, scale) => this.#draw(n, ctx, scale))
      .onRenderFramePre((ctx, scale) => this.#hostLabels(ctx, scale))
      .onRenderFramePost(() => void this.frames++);
    // Cells of one host gather around its own point; with one host, around the middle.
    const hostForce = Object.assign((alpha: number) => {
      const k = 0.08 * alpha;
      for (const n of this.#nodes.values()) {
        const c = this.#centre(n.host);
        n.vx = (n.vx ?? 0) + (c.x - (n.x ?? 0)) * k;
        n.vy = (n.vy ?? 0) + (c.y - (n.y ?? 0)) * k;
      }
    }, { initialize: () => undefined });
    graph.d3Force('hosts', hostForce as never);
    this.#graph = graph;
    new ResizeObserver(() => graph.width(el.clientWidth).height(el.clientHeight)).observe(el);
  }

  #centre(host: string): { x: number; y: number } {
    const i = this.#hosts.indexOf(host);
    if (this.#hosts.length <= 1 || i < 0) return { x: 0, y: 0 };
    const a = (2 * Math.PI * i) / this.#hosts.length;
    return { x: Math.cos(a) * 160, y: Math.sin(a) * 160 };
  }

  /** Each host's name above its group (only when there is more than one). */
  #hostLabels(ctx: CanvasRenderingContext2D, scale: number): void {
    if (this.#hosts.length <= 1) return;
    ctx.fillStyle = '#8a909c';
    ctx.font = `${12 / scale}px sans-serif`;
    ctx.textAlign = 'center';
    for (const host of this.#hosts) {
      const members = [...this.#nodes.values()].filter((n) => n.host === host);
      const top = Math.min(...members.map((n) => n.y ?? 0));
      const x = members.reduce((s, n) => s + (n.x ?? 0), 0) / Math.max(1, members.length);
      ctx.fillText(host, x, top - 14 / scale);
    }
    ctx.textAlign = 'start';
  }

  #draw(n: CellNode, ctx: CanvasRenderingContext2D, scale: number): void {
    const now = performance.now();
    const r = 3 + n.load * 7;
    const x = n.x ?? 0;
    const y = n.y ?? 0;
    const dead = n.state === 'dead';
    ctx.globalAlpha = dead ? 0.45 : 1;
    ctx.beginPath();
    ctx.arc(x, y, r, 0, 2 * Math.PI);
    ctx.fillStyle = dead ? '#4a505c' : colourOf(n.tissue);
    ctx.fill();
    if (n.state === 'draining' || n.state === 'suspect') {
      ctx.setLineDash(n.state === 'suspect' ? [2, 2] : []);
      ctx.strokeStyle = n.state === 'suspect' ? '#f5c04a' : '#ff9e64';
      ctx.lineWidth = 1.5 / scale;
      ctx.stroke();
      ctx.setLineDash([]);
    }
    if (dead) {
      ctx.strokeStyle = '#ff6b6b';
      ctx.lineWidth = 1.2 / scale;
      ctx.beginPath();
      ctx.moveTo(x - r, y - r);
      ctx.lineTo(x + r, y + r);
      ctx.moveTo(x + r, y - r);
      ctx.lineTo(x - r, y + r);
      ctx.stroke();
    }
    const young = now - n.appeared;
    if (n.appeared > 0 && young < RING_MS) {
      ctx.globalAlpha = 1 - young / RING_MS;
      ctx.strokeStyle = '#5fd38d';
      ctx.lineWidth = 2 / scale;
      ctx.beginPath();
      ctx.arc(x, y, r + (young / RING_MS) * 14, 0, 2 * Math.PI);
      ctx.stroke();
    }
    const flashed = now - n.flash;
    if (n.flash > 0 && flashed < FLASH_MS) {
      ctx.globalAlpha = 0.5 + 0.5 * Math.sin(flashed / 80);
      ctx.strokeStyle = '#ff6b6b';
      ctx.lineWidth = 3 / scale;
      ctx.beginPath();
      ctx.arc(x, y, r + 4, 0, 2 * Math.PI);
      ctx.stroke();
    }
    ctx.globalAlpha = 1;
    if (scale > 1.6) {
      ctx.fillStyle = '#d7dae0';
      ctx.font = `${10 / scale}px sans-serif`;
      ctx.fillText(n.id, x + r + 2, y + 3);
    }
  }

  /** A quarantine or a toxin: the cell flashes red. */
  flash(id: string): void {
    const n = this.#nodes.get(id);
    if (n) n.flash = performance.now();
  }

  /** The census (live, or a recorded frame): nodes keep their positions across updates. */
  show(rows: readonly CellRow[], options: { animate?: boolean } = {}): void {
    const now = performance.now();
    const seen = new Set<string>();
    for (const r of rows) {
      seen.add(r.id);
      const n = this.#nodes.get(r.id);
      if (n) {
        n.state = r.state;
        n.load = r.load;
        n.tissue = r.tissue;
      } else {
        const parent = r.parent ? this.#nodes.get(r.parent) : undefined;
        // A child starts next to its parent, so a division looks like one.
        this.#nodes.set(r.id, {
          id: r.id, tissue: r.tissue, host: r.host, parent: r.parent, state: r.state, load: r.load, flash: 0,
          appeared: this.#first || options.animate === false ? 0 : now,
          ...(parent?.x !== undefined ? { x: parent.x + 5, y: (parent.y ?? 0) + 5 } : {}),
        });
      }
    }
    for (const id of [...this.#nodes.keys()]) if (!seen.has(id)) this.#nodes.delete(id);
    this.#first = false;
    this.#hosts = [...new Set([...this.#nodes.values()].map((n) => n.host))].sort();
    const nodes = [...this.#nodes.values()];
    const links: LineageLink[] = nodes.filter((n) => n.parent !== null && this.#nodes.has(n.parent)).map((n) => ({ source: n.parent!, target: n.id }));
    // Only a changed set of nodes or edges restarts the layout; new loads and states just redraw.
    const shape = `${nodes.map((n) => n.id).join(',')}|${links.length}`;
    if (shape !== this.#shape) {
      this.#shape = shape;
      this.#graph.graphData({ nodes, links });
    }
  }
}
