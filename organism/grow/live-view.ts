/**
 * What `grow` shows while the organism lives: on a terminal, the census table redrawn
 * every pulse with the last eight homeostasis decisions under it; otherwise (a pipe, a
 * log, --plain) the table once and then one line per census change and per decision,
 * with the readings behind it (why a cell divided or died). Ends when `signal` aborts.
 */
import type { DecisionBody } from '../kernel/vocabulary.ts';
import { censusSummary, censusTable, decisionLine } from './census-table.ts';
import type { Organism } from './organism.ts';

/** Decisions kept under the redrawn table. */
const RECENT_DECISIONS = 8;

export interface LiveViewOptions {
  /** Redraw the table (a terminal) rather than print lines. */
  tty: boolean;
  signal: AbortSignal;
  out?: NodeJS.WritableStream;
}

export function showLiveView(organism: Organism, o: LiveViewOptions): void {
  const out = o.out ?? process.stdout;
  const census = organism.observer.census;
  const decisions: string[] = [];
  const offDecisions = organism.observer.bus.on((h) => {
    if (h.kind !== 'decision') return;
    const line = `${new Date(h.ts).toISOString()} ${decisionLine(h.from, h.body as DecisionBody)}`;
    if (o.tty) decisions.splice(0, Math.max(0, decisions.push(line) - RECENT_DECISIONS));
    else out.write(`${line}\n`);
  });
  o.signal.addEventListener('abort', offDecisions);
  if (o.tty) {
    const draw = () => {
      if (organism.state.state !== 'alive') return;
      const recent = decisions.length > 0 ? `\n\n decisions:\n ${decisions.join('\n ')}` : '';
      out.write(`\x1b[H\x1b[2J organism ${organism.id} · ${organism.servers.join(', ')} · ${censusSummary(census.living())}\n\n${censusTable(census.list())}${recent}\n\n Ctrl-C to stop\n`);
    };
    const timer = setInterval(draw, Math.max(250, organism.genome.limits.pulseIntervalMs));
    draw();
    o.signal.addEventListener('abort', () => clearInterval(timer));
    return;
  }
  out.write(`${censusTable(census.list())}\n`);
  void (async () => {
    for await (const e of census.events(o.signal)) {
      const what = e.type === 'state' ? `${e.from} -> ${e.entry.state}${e.entry.cause ? ` (${e.entry.cause})` : ''}` : e.type;
      out.write(`${new Date().toISOString()} ${e.entry.id} ${e.entry.tissue} pid ${e.entry.pid}: ${what}\n`);
    }
  })();
}
