/**
 * The flight recorder's timeline: scrub back through the last minutes (up to the recorder's
 * age limit, at most 10), and the graph, the table and the log show what was recorded then;
 * play steps through the recorded frames at their own pace. "live" returns to the feed.
 */
import type { RecordedFrame, SwarmEvent } from '../../organism/wire/dashboard-frames.ts';
import { clock, h } from './dom.ts';
import type { Feed } from './feed.ts';

const SPAN_MS = 10 * 60_000;
/** What one replay request covers around the chosen moment. */
const BEFORE_MS = 60_000;
const AFTER_MS = 60_000;

export interface ReplayView {
  /** A recorded frame (or null to leave replay) and the events up to its time. */
  show(frame: RecordedFrame | null, events: SwarmEvent[]): void;
}

export class Timeline {
  readonly #feed: Feed;
  readonly #view: ReplayView;
  readonly #range: HTMLInputElement;
  readonly #label = h('span', { id: 'timeline-at' }, 'live');
  readonly #play = h('button', { id: 'timeline-play', disabled: true }, 'play');
  readonly #live = h('button', { id: 'timeline-live', disabled: true }, 'live');
  #frames: RecordedFrame[] = [];
  #events: SwarmEvent[] = [];
  #at = 0;
  #timer: number | undefined;
  #span = SPAN_MS;
  replaying = false;

  constructor(el: HTMLElement, feed: Feed, view: ReplayView) {
    this.#feed = feed;
    this.#view = view;
    this.#range = h('input', { id: 'timeline-range', type: 'range', min: 0, max: 1000, value: 1000, 'aria-label': 'time to replay' });
    this.#range.addEventListener('change', () => void this.seek(this.#timeOf(Number(this.#range.value))));
    this.#play.addEventListener('click', () => this.#toggle());
    this.#live.addEventListener('click', () => this.live());
    el.replaceChildren(h('strong', {}, 'Flight recorder'), this.#range, this.#label, this.#play, this.#live);
  }

  setSpan(recorderMaxAgeMs: number): void {
    this.#span = Math.min(SPAN_MS, recorderMaxAgeMs);
  }

  #timeOf(v: number): number {
    return Date.now() - this.#span + (v / 1000) * this.#span;
  }

  /** Shows the recorder at `ts` (ms since the epoch). */
  async seek(ts: number): Promise<void> {
    this.#stop();
    this.replaying = true;
    this.#label.textContent = `loading ${clock(ts)}…`;
    const r = await this.#feed.request({ t: 'replay', from: Math.max(0, Math.round(ts - BEFORE_MS)), to: Math.round(Math.min(Date.now(), ts + AFTER_MS)) });
    if (r.t !== 'replay') {
      this.#label.textContent = `replay failed: ${String(r.message ?? 'no answer')}`;
      return;
    }
    this.#frames = (r.frames as RecordedFrame[]) ?? [];
    this.#events = ((r.events as Omit<SwarmEvent, 'n'>[]) ?? []).map((e, i) => ({ ...e, n: i + 1 }));
    this.#play.disabled = this.#frames.length === 0;
    this.#live.disabled = false;
    if (this.#frames.length === 0) {
      this.#label.textContent = `nothing recorded around ${clock(ts)}`;
      return;
    }
    let best = 0;
    for (let i = 0; i < this.#frames.length; i++) if (Math.abs(this.#frames[i]!.ts - ts) < Math.abs(this.#frames[best]!.ts - ts)) best = i;
    this.#at = best;
    this.#render();
  }

  #render(): void {
    const f = this.#frames[this.#at]!;
    this.#label.textContent = `replay ${clock(f.ts)} (frame ${this.#at + 1} of ${this.#frames.length})`;
    this.#label.dataset.ts = String(f.ts);
    this.#view.show(f, this.#events.filter((e) => e.ts <= f.ts));
  }

  #toggle(): void {
    if (this.#timer !== undefined) return this.#stop();
    this.#play.textContent = 'pause';
    const step = () => {
      if (this.#at >= this.#frames.length - 1) return this.#stop();
      const gap = this.#frames[this.#at + 1]!.ts - this.#frames[this.#at]!.ts;
      this.#timer = window.setTimeout(() => {
        this.#at++;
        this.#render();
        step();
      }, Math.min(2_000, Math.max(50, gap)));
    };
    step();
  }

  #stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#play.textContent = 'play';
  }

  live(): void {
    this.#stop();
    this.replaying = false;
    this.#range.value = '1000';
    this.#label.textContent = 'live';
    delete this.#label.dataset.ts;
    this.#live.disabled = true;
    this.#play.disabled = true;
    this.#view.show(null, []);
  }
}
