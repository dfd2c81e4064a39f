/**
 * The dashboard page: connects to the dashboard cell's feed and keeps the graph, the
 * charts, the event log, the cell table and detail, the controls and the flight recorder's
 * timeline current. Everything the page shows comes from the feed; it holds no secrets but
 * the dashboard token, kept in this tab's sessionStorage.
 */
import type { CellRow, RecordedFrame, SeriesPoint, SwarmEvent } from '../../organism/wire/dashboard-frames.ts';
import { Charts } from './charts.ts';
import { Controls, takeToken, type Hello } from './controls.ts';
import { renderDetail, type Detail } from './detail.ts';
import { age, byId, colourOf, h, mib } from './dom.ts';
import { Feed, type Frame } from './feed.ts';
import { SwarmGraph } from './graph.ts';
import { EventLog } from './log.ts';
import { Timeline } from './timeline.ts';

const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;

let hello: Hello | undefined;
let liveRows: CellRow[] = [];
let selected: string | undefined;
const log = new EventLog(byId<HTMLOListElement>('log'), byId('log-filters'));
const charts = new Charts(byId('charts'), 900);
const status = byId('status');
const graph = new SwarmGraph(byId('graph'), (id) => void select(id));
const feed = new Feed(wsUrl, onFrame, (state) => {
  status.dataset.state = state;
  status.textContent = state === 'live' ? 'live' : state === 'connecting' ? 'connecting…' : 'dashboard cell away: reconnecting…';
});
const controls = new Controls(byId('controls'), feed, takeToken());
const liveEvents: SwarmEvent[] = [];
const timeline = new Timeline(byId('timeline'), feed, {
  show(frame: RecordedFrame | null, events: SwarmEvent[]) {
    const mode = byId('mode');
    mode.dataset.mode = frame ? 'replay' : 'live';
    mode.textContent = frame ? 'replay' : 'live';
    if (frame) {
      showCells(frame.cells, false);
      log.reset(events);
    } else {
      showCells(liveRows, false);
      log.reset(liveEvents);
    }
  },
});
// For people measuring the page (docs/benchmarks.md#dashboard): frames the graph drew, feed ticks taken.
let ticks = 0;
Object.assign(window, { cellularDashboard: { frames: () => graph.frames, ticks: () => ticks } });

function showCells(rows: readonly CellRow[], animate = true): void {
  graph.show(rows, { animate });
  const living = rows.filter((r) => r.state !== 'dead');
  const count = byId('cell-count');
  count.dataset.count = String(living.length);
  count.textContent = `${living.length} cells`;
  renderTable(rows);
  const legend = byId('legend');
  const tissues = [...new Set(rows.map((r) => r.tissue))].sort();
  if (legend.dataset.tissues !== tissues.join(',')) {
    legend.dataset.tissues = tissues.join(',');
    legend.replaceChildren(...tissues.map((t) => {
      const sw = h('span', { class: 'swatch' });
      sw.style.background = colourOf(t);
      return h('span', {}, sw, t);
    }));
  }
}

/** The cell table, updated in place: a row is built once per cell and only its changed cells are written. */
const tableRows = new Map<string, { tr: HTMLTableRowElement; tds: HTMLTableCellElement[]; last: string[] }>();
function renderTable(rows: readonly CellRow[]): void {
  const now = Date.now();
  const body = byId('cells').querySelector('tbody')!;
  const sorted = [...rows].sort((a, b) => a.tissue.localeCompare(b.tissue) || a.born - b.born || a.id.localeCompare(b.id));
  const keep = new Set(sorted.map((r) => r.id));
  for (const [id, row] of tableRows) if (!keep.has(id)) (row.tr.remove(), tableRows.delete(id));
  let previous: HTMLTableRowElement | null = null;
  for (const r of sorted) {
    let row = tableRows.get(r.id);
    if (!row) {
      const tds = Array.from({ length: 8 }, () => h('td'));
      const tr = h('tr', { 'data-id': r.id }, ...tds);
      tr.addEventListener('click', () => void select(r.id));
      row = { tr, tds, last: [] };
      tableRows.set(r.id, row);
    }
    // A stem cell that differentiates changes tissue in place.
    if (row.tr.dataset.tissue !== r.tissue) {
      row.tr.dataset.tissue = r.tissue;
      const sw = h('span', { class: 'swatch' });
      sw.style.background = colourOf(r.tissue);
      row.tds[1]!.replaceChildren(sw, r.tissue);
    }
    const values = [r.id, '', r.host, r.cause ? `${r.state} (${r.cause})` : r.state, r.load.toFixed(2), r.cpu.toFixed(1), mib(r.rss), age(now - r.born)];
    values.forEach((v, i) => {
      if (i !== 1 && row.last[i] !== v) row.tds[i]!.textContent = v;
    });
    row.last = values;
    if (row.tr.dataset.state !== r.state) row.tr.dataset.state = r.state;
    // Keep document order = sorted order, moving only what is out of place.
    const want: ChildNode | null = previous ? previous.nextSibling : body.firstChild;
    if (want !== row.tr) body.insertBefore(row.tr, want);
    previous = row.tr;
  }
}

async function select(id: string): Promise<void> {
  selected = id;
  const r = await feed.request({ t: 'detail', cell: id });
  if (selected !== id) return;
  renderDetail(byId('detail'), (r.detail as Detail | null) ?? null, id, {
    ...(controls.unlocked ? { kill: () => void controls.send({ action: 'kill', cell: id }) } : {}),
    filter: () => log.filter(id),
  });
}

function onFrame(f: Frame): void {
  switch (f.t) {
    case 'hello': {
      hello = f as unknown as Hello;
      byId('organism').textContent = `organism ${hello.organism} · dashboard ${hello.cell}`;
      timeline.setSpan(hello.recorderMaxAgeMs);
      controls.render(hello);
      void controls.check();
      return;
    }
    case 'snapshot': {
      liveRows = f.cells as CellRow[];
      liveEvents.splice(0, liveEvents.length, ...(f.events as SwarmEvent[]));
      charts.reset(f.series as SeriesPoint[]);
      if (!timeline.replaying) {
        showCells(liveRows, false);
        log.reset(liveEvents);
      }
      return;
    }
    case 'tick': {
      ticks++;
      liveRows = f.cells as CellRow[];
      const events = f.events as SwarmEvent[];
      liveEvents.push(...events);
      if (liveEvents.length > 3_000) liveEvents.splice(0, liveEvents.length - 3_000);
      if (timeline.replaying) return;
      showCells(liveRows);
      log.add(events);
      for (const e of events) if (e.kind === 'toxin' || (e.kind === 'verdict' && e.data?.guilty)) for (const c of e.cells) graph.flash(c);
      if (selected && events.some((e) => e.cells.includes(selected!))) void select(selected);
      return;
    }
    case 'point':
      charts.add(f.point as SeriesPoint);
      return;
    case 'error':
      console.warn(`dashboard cell: ${String(f.message)}`);
      return;
  }
}

feed.start();
