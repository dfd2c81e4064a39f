/**
 * Controls: load on a tissue, a misbehaving cell, a chaos scenario, shutdown — and kill from
 * the cell detail. They need the dashboard token (grow prints the URL with it, in the
 * fragment, which never reaches a server); without it the page is read-only and the cell
 * refuses every control anyway.
 */
import { h } from './dom.ts';
import type { Feed, Frame } from './feed.ts';

export interface Hello {
  organism: string;
  cell: string;
  tissues: Record<string, { min: number; max: number }>;
  faults: string[];
  scenarios: { name: string; description: string }[];
  loadMaxRate: number;
  loadMaxSeconds: number;
  recorderMaxAgeMs: number;
  pushIntervalMs: number;
}

const TOKEN_KEY = 'cellular.dashboard.token';

/** The token from `#token=…` (then taken out of the address bar) or from this tab's storage. */
export function takeToken(): string {
  const m = /(?:^#|&)token=([A-Za-z0-9_-]+)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, m[1]!);
    history.replaceState(null, '', location.pathname + location.search);
  }
  return sessionStorage.getItem(TOKEN_KEY) ?? '';
}

export class Controls {
  readonly #el: HTMLElement;
  readonly #feed: Feed;
  #token: string;
  #unlocked = false;
  readonly #result = h('p', { id: 'control-result', role: 'status' });
  readonly #buttons: HTMLButtonElement[] = [];

  constructor(el: HTMLElement, feed: Feed, token: string) {
    this.#el = el;
    this.#feed = feed;
    this.#token = token;
  }

  get unlocked(): boolean {
    return this.#unlocked;
  }

  /** Asks the cell whether the token opens the controls (again after every reconnect). */
  async check(): Promise<void> {
    const r = this.#token ? await this.#feed.request({ t: 'auth', token: this.#token }) : { t: 'result', ok: false };
    this.#unlocked = r.ok === true;
    const access = document.getElementById('access')!;
    access.dataset.unlocked = String(this.#unlocked);
    access.textContent = this.#unlocked ? 'controls unlocked' : 'read-only';
    for (const b of this.#buttons) b.disabled = !this.#unlocked;
  }

  async send(control: Record<string, unknown>): Promise<Frame> {
    this.#result.textContent = '…';
    const r = await this.#feed.request({ t: 'control', token: this.#token, control });
    this.#result.dataset.ok = String(r.ok === true);
    this.#result.textContent = `${r.ok ? '✓' : '✗'} ${String(r.message ?? '')}`;
    return r;
  }

  render(hello: Hello): void {
    const tissues = Object.keys(hello.tissues);
    const select = (id: string, options: string[]) => h('select', { id }, ...options.map((o) => h('option', { value: o }, o)));
    const button = (id: string, text: string, danger = false) => {
      const b = h('button', { id, type: 'submit', disabled: !this.#unlocked, class: danger ? 'danger' : undefined }, text);
      this.#buttons.push(b);
      return b;
    };
    const form = (id: string, children: (Node | string)[], submit: () => Record<string, unknown> | null) => {
      const f = h('form', { id }, ...children);
      f.addEventListener('submit', (e) => {
        e.preventDefault();
        const control = submit();
        if (control) void this.send(control);
      });
      return f;
    };
    const num = (id: string, value: number, max: number) => h('input', { id, type: 'number', min: 1, max, value, required: true });
    const value = (id: string) => (document.getElementById(id) as HTMLInputElement | HTMLSelectElement).value;
    const tokenInput = h('input', { id: 'token', type: 'password', placeholder: 'dashboard token', autocomplete: 'off', value: this.#token });
    this.#buttons.length = 0;
    this.#el.replaceChildren(
      h('h2', {}, 'Controls'),
      form('unlock', [tokenInput, h('button', { type: 'submit' }, 'unlock')], () => {
        this.#token = tokenInput.value.trim();
        sessionStorage.setItem(TOKEN_KEY, this.#token);
        void this.check();
        return null;
      }),
      form('load-form', [h('label', {}, 'load'), select('load-tissue', tissues), num('load-rate', 200, hello.loadMaxRate), h('label', {}, '/s for'), num('load-seconds', 30, hello.loadMaxSeconds), h('label', {}, 's'), button('load-go', 'apply')],
        () => ({ action: 'load', tissue: value('load-tissue'), rate: Number(value('load-rate')), seconds: Number(value('load-seconds')) })),
      form('inject-form', [h('label', {}, 'inject a'), select('inject-fault', hello.faults), select('inject-tissue', tissues.filter((t) => t !== 'dashboard')), button('inject-go', 'inject')],
        () => ({ action: 'inject', tissue: value('inject-tissue'), fault: value('inject-fault') })),
      form('chaos-form', [h('label', {}, 'chaos'), select('chaos-scenario', hello.scenarios.map((s) => s.name)), h('label', {}, 'seed'), num('chaos-seed', 1, 2 ** 32 - 1), button('chaos-go', 'start')],
        () => ({ action: 'chaos', scenario: value('chaos-scenario'), seed: Number(value('chaos-seed')) })),
      form('shutdown-form', [button('shutdown-go', 'shut the organism down', true)],
        () => (confirm(`Shut organism ${hello.organism} down? Every cell drains and grow exits.`) ? { action: 'shutdown' } : null)),
      h('p', { class: 'hint' }, ...hello.scenarios.map((s) => `${s.name}: ${s.description}. `)),
      this.#result,
    );
  }
}
