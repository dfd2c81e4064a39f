/** A small element builder: the page builds its DOM with this and textContent, never innerHTML. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string | number | boolean | undefined> = {}, ...children: (Node | string | null | undefined)[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined) el.append(c);
  return el;
}

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`the page has no #${id}`);
  return el as T;
}

export const clock = (ts: number) => new Date(ts).toLocaleTimeString([], { hour12: false });

export function mib(bytes: number): string {
  return (bytes / 1_048_576).toFixed(0);
}

export function age(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** Stable colours per tissue (the same tissue is the same colour in every view). */
const PALETTE = ['#6cb6ff', '#5fd38d', '#f5c04a', '#c58af9', '#ff9e64', '#4fd6be', '#ff7eb6', '#a8b1ff'];
const FIXED: Record<string, string> = { stem: '#9aa4b2', receiver: '#6cb6ff', worker: '#5fd38d', echo: '#f5c04a', dashboard: '#c58af9' };
const assigned = new Map<string, string>();
export function colourOf(tissue: string): string {
  const fixed = FIXED[tissue];
  if (fixed) return fixed;
  let c = assigned.get(tissue);
  if (!c) {
    c = PALETTE[(assigned.size + 5) % PALETTE.length]!;
    assigned.set(tissue, c);
  }
  return c;
}
