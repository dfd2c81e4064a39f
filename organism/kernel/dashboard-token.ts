/**
 * The dashboard token: a random secret in the state dir (mode 0600) that turns the read-only
 * dashboard into a control panel. grow prints it (in the dashboard URL's fragment, which a
 * browser never sends to a server); the dashboard cell and the operator each compare what a
 * page presents with it, in constant time.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { codec } from '../wire/codec.ts';
import { join } from 'node:path';
import { loadOrCreateSecret, readSecret } from './secret-file.ts';

export const DASHBOARD_TOKEN_FILE = 'dashboard.token';

/** Reads the token, creating it (0600) the first time: a bookmarked dashboard URL keeps working across grows. */
export function loadOrCreateDashboardToken(stateDir: string): string {
  return loadOrCreateSecret(join(stateDir, DASHBOARD_TOKEN_FILE), 'DASHBOARD_ERR_TOKEN');
}

export function readDashboardToken(stateDir: string): string {
  return readSecret(join(stateDir, DASHBOARD_TOKEN_FILE), 'DASHBOARD_ERR_TOKEN');
}

/** A checker that holds only the token's hash and compares in constant time. */
export function tokenChecker(token: string): (presented: unknown) => boolean {
  const want = createHash('sha256').update(token).digest();
  return (presented) => typeof presented === 'string' && presented.length <= 256 && timingSafeEqual(createHash('sha256').update(presented).digest(), want);
}

/**
 * A control as the dashboard cell sends it to the operator: never the token, only proof of
 * it. The MAC covers the organism id, who relays it, the control's bytes, the time and a
 * random nonce, under a key derived from the token; the operator refuses a stale time and a
 * nonce it has seen, so a control captured on the broker cannot be replayed or altered.
 */
export interface SignedControl {
  by: string;
  /** The control, msgpack-encoded (the MAC covers these bytes, not a re-encoding). */
  control: Uint8Array;
  at: number;
  nonce: Uint8Array;
  mac: Uint8Array;
}

const CONTROL_DOMAIN = 'cellular dashboard control v1';

function controlKey(token: string): Buffer {
  return createHmac('sha256', token).update(CONTROL_DOMAIN).digest();
}

function controlMac(key: Buffer, organism: string, c: Omit<SignedControl, 'mac'>): Buffer {
  return createHmac('sha256', key).update(codec.pack([CONTROL_DOMAIN, organism, c.by, c.control, c.at, c.nonce])).digest();
}

/** Signs `control` for the operator of `organism` with the dashboard token. */
export function signControl(token: string, organism: string, by: string, control: unknown, now = Date.now()): SignedControl {
  const unsigned = { by, control: codec.pack(control), at: now, nonce: new Uint8Array(randomBytes(16)) };
  return { ...unsigned, mac: new Uint8Array(controlMac(controlKey(token), organism, unsigned)) };
}

/** The operator's check: the MAC holds, the time is within `windowMs`, the nonce is new. Returns the control, or why not. */
export class ControlVerifier {
  readonly #key: Buffer;
  readonly #organism: string;
  readonly #windowMs: number;
  /** Nonces seen within the window, and when each may be forgotten. */
  readonly #seen = new Map<string, number>();

  constructor(token: string, organism: string, windowMs = 30_000) {
    this.#key = controlKey(token);
    this.#organism = organism;
    this.#windowMs = windowMs;
  }

  check(request: unknown, now = Date.now()): { ok: true; control: unknown; by: string } | { ok: false; why: 'malformed' | 'mac' | 'stale' | 'replayed' } {
    const r = request as Partial<SignedControl> | null;
    if (typeof r !== 'object' || r === null || typeof r.by !== 'string' || r.by.length > 128 || !(r.control instanceof Uint8Array) || r.control.length > 4096
      || typeof r.at !== 'number' || !Number.isSafeInteger(r.at) || !(r.nonce instanceof Uint8Array) || r.nonce.length !== 16 || !(r.mac instanceof Uint8Array) || r.mac.length !== 32) {
      return { ok: false, why: 'malformed' };
    }
    const want = controlMac(this.#key, this.#organism, { by: r.by, control: r.control, at: r.at, nonce: r.nonce });
    if (!timingSafeEqual(want, Buffer.from(r.mac))) return { ok: false, why: 'mac' };
    if (Math.abs(now - r.at) > this.#windowMs) return { ok: false, why: 'stale' };
    for (const [n, until] of this.#seen) {
      if (until > now) break;
      this.#seen.delete(n);
    }
    const nonce = Buffer.from(r.nonce).toString('hex');
    if (this.#seen.has(nonce)) return { ok: false, why: 'replayed' };
    this.#seen.set(nonce, now + 2 * this.#windowMs);
    let control: unknown;
    try {
      control = codec.unpack(r.control);
    } catch {
      return { ok: false, why: 'malformed' };
    }
    return { ok: true, control, by: r.by };
  }
}
