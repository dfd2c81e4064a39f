/**
 * The event log: births, deaths with their cause, every homeostasis decision with the
 * readings behind it, accusations, votes as they arrive, verdicts, toxins, refusals and
 * the operator's controls. Filterable by kind and by text; newest first.
 */
import { EVENT_KINDS, type EventKind, type SwarmEvent } from '../../organism/wire/dashboard-frames.ts';
import { clock, h } from './dom.ts';

/** Lines kept on the page, and drawn at once (the cell keeps more). */
const KEPT = 3_000;
const DRAWN = 400;

export class EventLog {
  readonly #list: HTMLOListElement;
  readonly #events: SwarmEvent[] = [];
  readonly #shown = new Set<EventKind>(EVENT_KINDS);
  #text = '';
  #pending = false;

  constructor(list: HTMLOListElement, filters: HTMLElement) {
    this.#list = list;
    for (const kind of EVENT_KINDS) {
      const box = h('input', { type: 'checkbox', checked: true, 'data-kind': kind, id: `filter-${kind}` });
      box.addEventListener('change', () => {
        if (box.checked) this.#shown.add(kind);
        else this.#shown.delete(kind);
        this.#redraw();
      });
      filters.append(h('label', { for: `filter-${kind}` }, box, ` ${kind}`));
    }
    const search = h('input', { type: 'search', placeholder: 'filter text or cell id', id: 'log-search', 'aria-label': 'filter the log' });
    search.addEventListener('input', () => {
      this.#text = search.value.trim().toLowerCase();
      this.#redraw();
    });
    filters.append(search);
  }

  /** Replaces the log (a new snapshot, or a replayed span). */
  reset(events: readonly SwarmEvent[]): void {
    this.#events.splice(0, this.#events.length, ...events.slice(-KEPT));
    this.#redraw();
  }

  add(events: readonly SwarmEvent[]): void {
    if (events.length === 0) return;
    this.#events.push(...events);
    if (this.#events.length > KEPT) this.#events.splice(0, this.#events.length - KEPT);
    this.#redraw();
  }

  /** Shows only what mentions `text` (a cell id, from the cell detail). */
  filter(text: string): void {
    const search = document.getElementById('log-search') as HTMLInputElement | null;
    if (search) search.value = text;
    this.#text = text.toLowerCase();
    this.#redraw();
  }

  #redraw(): void {
    if (this.#pending) return;
    this.#pending = true;
    requestAnimationFrame(() => {
      this.#pending = false;
      const lines: HTMLLIElement[] = [];
      for (let i = this.#events.length - 1; i >= 0 && lines.length < DRAWN; i--) {
        const e = this.#events[i]!;
        if (!this.#shown.has(e.kind)) continue;
        if (this.#text && !e.text.toLowerCase().includes(this.#text) && !e.cells.some((c) => c.includes(this.#text))) continue;
        lines.push(line(e));
      }
      this.#list.replaceChildren(...lines);
    });
  }
}

function line(e: SwarmEvent): HTMLLIElement {
  const readings = e.kind === 'decision' && e.data
    ? h('span', { class: 'readings' }, ` [${Object.entries(e.data).filter(([k]) => k !== 'action' && k !== 'epoch').map(([k, v]) => `${k}=${typeof v === 'number' ? +v.toFixed(3) : String(v)}`).join(' ')}]`)
    : null;
  return h('li', { 'data-kind': e.kind, 'data-cells': e.cells.join(' ') }, h('time', {}, clock(e.ts)), h('span', { class: 'kind' }, e.kind), ` ${e.text}`, readings);
}
