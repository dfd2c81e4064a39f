/**
 * The census as a text table, like `pm2 ls`: one row a cell.
 */
import type { CensusEntry } from '../kernel/census.ts';
import { tissueStress } from '../kernel/stress.ts';
import type { DecisionBody } from '../kernel/vocabulary.ts';

function ago(ms: number): string {
  if (ms < 1_000) return `${ms}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)}m${Math.floor((ms % 60_000) / 1000)}s`;
  return `${Math.floor(ms / 3_600_000)}h${Math.floor((ms % 3_600_000) / 60_000)}m`;
}

function mb(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)}MB`;
}

export function censusTable(entries: readonly CensusEntry[]): string {
  const head = ['ID', 'TISSUE', 'STATE', 'PID', 'HOST', 'PARENT', 'AGE', 'LOAD', 'CPU%', 'RSS', 'LAG', 'URL'];
  const rows = entries.map((e) => [
    e.id, e.tissue, e.state === 'dead' && e.cause ? `dead(${e.cause})` : e.state, String(e.pid), e.host, e.parent ?? '-', ago(e.age),
    e.load.toFixed(2), e.cpu.toFixed(1), mb(e.rss), `${e.lag.toFixed(0)}ms`, e.url ?? '-',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(head), ...rows.map(line)].join('\n');
}

/** One line per tissue: `echo: 1 alive, stress 0.42; stem: 2 alive, 1 suspect, stress 0.01`. */
export function censusSummary(entries: readonly CensusEntry[]): string {
  const stress = tissueStress(entries);
  const by = new Map<string, Record<string, number>>();
  for (const e of entries) {
    const t = by.get(e.tissue) ?? {};
    t[e.state] = (t[e.state] ?? 0) + 1;
    by.set(e.tissue, t);
  }
  if (by.size === 0) return 'no cells';
  return [...by.entries()]
    .map(([t, s]) => `${t}: ${Object.entries(s).map(([k, n]) => `${n} ${k}`).join(', ')}${stress[t] === undefined ? '' : `, stress ${stress[t]!.toFixed(2)}`}`)
    .join('; ');
}

/** One homeostasis decision as a log line: who, what, which cells, why, and the key readings. */
export function decisionLine(from: string, d: DecisionBody): string {
  const cells = d.cells.length > 0 ? ` ${d.cells.join(',')}` : d.count > 0 ? ` ×${d.count}` : '';
  const r = d.readings;
  const keys = ['stress', 'demand', 'alive', 'pending', 'desired', 'failures', 'backoffMs'].filter((k) => r[k] !== undefined);
  return `decision ${d.tissue} ${d.action}${cells} by ${from}: ${d.reason} [${keys.map((k) => `${k} ${r[k]}`).join(', ')}]`;
}
