/**
 * Cell detail, on a click in the graph or the table: metabolism, lineage certificate, age,
 * the evidence the dashboard cell holds against it, its recent decisions and events.
 */
import type { SwarmEvent } from '../../organism/wire/dashboard-frames.ts';
import type { CellRow } from '../../organism/wire/dashboard-frames.ts';
import { age, clock, h, mib } from './dom.ts';

export interface Detail {
  id: string;
  row: CellRow | null;
  age: number | null;
  pulses: number | null;
  genome: string | null;
  demand: number | null;
  work: { handled: number; inflight: number; queued: number; errors: number } | null;
  cert: { issuer: string; parent: string | null; generation: number; budget: number; tissue: string; host: string; born: number; pub: string } | null;
  evidence: { rate: number; forgeries: number; lastForgery: string; liarStreak: number; lastLie: string; genomeMismatches: number; children: number; budget: number | null; finding: { kind: string; detail: string } | null } | null;
  decisions: SwarmEvent[];
  events: SwarmEvent[];
  stats: { hormones?: { accepted?: number }; tissueStats?: Record<string, unknown> | null; decisions?: Record<string, number> } | null;
}

const dl = (pairs: [string, string | number | null | undefined][]) =>
  h('dl', {}, ...pairs.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v === null || v === undefined ? '—' : String(v))]));

export function renderDetail(el: HTMLElement, d: Detail | null, id: string, actions: { kill?: () => void; filter: () => void }): void {
  el.hidden = false;
  el.dataset.cell = id;
  if (!d) {
    el.replaceChildren(h('h2', {}, id), h('p', {}, 'This cell is not known to the dashboard (it left the census).'));
    return;
  }
  const r = d.row;
  const killButton = h('button', { class: 'danger', id: 'detail-kill', disabled: !actions.kill || r?.state === 'dead' }, 'kill -9');
  killButton.addEventListener('click', () => actions.kill?.());
  const logButton = h('button', { id: 'detail-log' }, 'show in log');
  logButton.addEventListener('click', actions.filter);
  const e = d.evidence;
  el.replaceChildren(
    h('h2', {}, `${id} `, h('small', { id: 'detail-state', 'data-state': r?.state ?? 'unknown' }, r?.state ?? 'unknown')),
    h('div', {}, killButton, ' ', logButton),
    h('h3', {}, 'Metabolism'),
    dl([
      ['tissue', r?.tissue], ['host · pid', r ? `${r.host} · ${r.pid}` : null], ['age', d.age === null ? null : age(d.age)],
      ['load (smoothed)', r ? `${r.load.toFixed(2)} (${r.smoothed.toFixed(2)})` : null], ['demand', d.demand?.toFixed(2)],
      ['cpu %', r?.cpu], ['rss MiB', r ? mib(r.rss) : null], ['event-loop lag ms', r?.lag],
      ['work', d.work ? `${d.work.handled} handled, ${d.work.inflight} in flight, ${d.work.queued} queued, ${d.work.errors} errors` : null],
      ['pulses', d.pulses], ['genome', d.genome], ['url', r?.url], ['died', r?.died ? `${clock(r.died)} (${r.cause})` : null],
    ]),
    h('h3', {}, 'Lineage certificate'),
    d.cert
      ? dl([['issued by', d.cert.issuer], ['parent', d.cert.parent ?? 'root'], ['generation', d.cert.generation], ['replication budget', d.cert.budget], ['born', `${clock(d.cert.born)} on ${d.cert.host}`], ['public key', `${d.cert.pub.slice(0, 16)}…`]])
      : h('p', {}, 'no certificate known'),
    h('h3', {}, 'Evidence held against it'),
    e
      ? dl([['hormones/s', e.rate], ['forgeries', e.forgeries ? `${e.forgeries} (${e.lastForgery})` : 0], ['failed metabolism checks in a row', e.liarStreak ? `${e.liarStreak} (${e.lastLie})` : 0], ['genome/code mismatches', e.genomeMismatches], ['children / budget', `${e.children} / ${e.budget ?? '—'}`], ['past a threshold', e.finding ? `${e.finding.kind}: ${e.finding.detail}` : 'no']])
      : h('p', { id: 'detail-evidence-none' }, 'none'),
    h('h3', {}, 'Recent decisions'),
    d.decisions.length ? h('ol', {}, ...d.decisions.slice().reverse().map((x) => h('li', {}, `${clock(x.ts)} ${x.text}`))) : h('p', {}, 'none'),
    h('h3', {}, 'Recent events'),
    d.events.length ? h('ol', { id: 'detail-events' }, ...d.events.slice().reverse().map((x) => h('li', { 'data-kind': x.kind }, `${clock(x.ts)} ${x.kind}: ${x.text}`))) : h('p', {}, 'none'),
  );
}
