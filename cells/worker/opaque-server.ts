/**
 * The server's half of OPAQUE (RFC 9807; @serenity-kit/opaque, built on opaque-ke:
 * ristretto255 OPRF and 3DH, SHA-512, Argon2id key stretching run by the client), so the
 * password never reaches a server: what it sees and stores lets it check a login, and
 * guessing the password from it costs one online login, or — for whoever holds the setup
 * secret and the stored record — one Argon2id run per guess, with no precomputation.
 *
 * The setup secret (the OPRF seed and the server's static key) is the organism's: created
 * once by the first worker in the accounts bucket (compare-and-set, so workers racing at
 * boot agree), read by every worker after. Changing it would invalidate every account.
 *
 * Between login.start and login.finish the server's state travels with the client, sealed
 * (AES-256-GCM under a key derived from the setup secret, bound to the user, valid for
 * LOGIN_STATE_TTL_MS): any worker can finish any login, receivers keep nothing, and nobody
 * outside the workers can read or forge a state.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import type { KV } from '@nats-io/kv';
import * as opaque from '@serenity-kit/opaque';
import { codec } from '../../organism/wire/codec.ts';
import { CellularError } from '../../organism/wire/errors.ts';
import { writeIfUnchanged } from '../../organism/kernel/compare-and-set.ts';

/** Where the setup secret lives in the accounts bucket (user keys are `u.<user>`). */
export const OPAQUE_SETUP_KEY = 'opaque.setup';
/** How long a login may take between its two messages (Argon2id on a slow phone included). */
export const LOGIN_STATE_TTL_MS = 5 * 60_000;

const STATE_LABEL = 'cellular/v2/login-state';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const SETUP = /^[A-Za-z0-9_-]{100,400}$/;

const credentials = (why: string, cause?: unknown) =>
  new CellularError('AUTH_ERR_CREDENTIALS', `the username or password is wrong (${why})`, cause === undefined ? {} : { cause });

/** A message of the library, which throws strings as often as Errors. */
const reason = (e: unknown) => (e instanceof Error ? e.message : String(e));

export class OpaqueServer {
  readonly #setup: string;
  readonly #stateKey: Buffer;
  readonly #now: () => number;

  private constructor(setup: string, now: () => number) {
    this.#setup = setup;
    this.#stateKey = Buffer.from(hkdfSync('sha256', Buffer.from(setup), Buffer.alloc(0), STATE_LABEL, 32));
    this.#now = now;
  }

  /** The organism's OPAQUE server: its setup secret read from `accounts`, or made there by the first worker. */
  static async open(accounts: KV, now: () => number = Date.now): Promise<OpaqueServer> {
    await opaque.ready;
    for (let attempt = 0; attempt < 8; attempt++) {
      const e = await accounts.get(OPAQUE_SETUP_KEY);
      if (e && e.operation === 'PUT') {
        const r = codec.unpack(e.value) as { v?: unknown; setup?: unknown } | null;
        if (r?.v !== 1 || typeof r.setup !== 'string' || !SETUP.test(r.setup)) {
          throw new CellularError('STORE_ERR_RECORD', `${OPAQUE_SETUP_KEY} rejected: malformed (every account depends on it: restore it from a backup)`);
        }
        return new OpaqueServer(r.setup, now);
      }
      const setup = opaque.server.createSetup();
      if ((await writeIfUnchanged(accounts, OPAQUE_SETUP_KEY, codec.pack({ v: 1, setup, created: now() }), e?.revision ?? 0)) !== undefined) {
        return new OpaqueServer(setup, now);
      }
      // Another worker made it first: read theirs.
    }
    throw new CellularError('STORE_ERR_RECORD', `${OPAQUE_SETUP_KEY}: could not read or create it`);
  }

  /** The server's static public key (base64url): what a client may pin. */
  get publicKey(): string {
    return opaque.server.getPublicKey(this.#setup);
  }

  /** Registration's one server step: the OPRF evaluation for `user`'s blinded password. */
  registrationResponse(user: string, request: string): string {
    try {
      return opaque.server.createRegistrationResponse({ serverSetup: this.#setup, userIdentifier: user, registrationRequest: request }).registrationResponse;
    } catch (cause) {
      throw new CellularError('TISSUE_ERR_BAD_REQUEST', `the registration request is not an OPAQUE message: ${reason(cause)}`, { cause });
    }
  }

  /**
   * Login's first server step. With no record (an unknown user) the answer is a fake one
   * indistinguishable from a real one, so login.start does not tell names apart.
   */
  startLogin(user: string, record: string | null, request: string, window: number): { response: string; state: Uint8Array } {
    let started: { serverLoginState: string; loginResponse: string };
    try {
      started = opaque.server.startLogin({ serverSetup: this.#setup, userIdentifier: user, registrationRecord: record, startLoginRequest: request });
    } catch (cause) {
      throw new CellularError('TISSUE_ERR_BAD_REQUEST', `the login request is not an OPAQUE message: ${reason(cause)}`, { cause });
    }
    return { response: started.loginResponse, state: this.#seal({ user, state: started.serverLoginState, window }) };
  }

  /**
   * Login's last server step: the client proved the password, or AUTH_ERR_CREDENTIALS.
   * Gives back the rate-limit window login.start counted the user's attempt in.
   */
  finishLogin(user: string, sealedState: Uint8Array, finish: string): { window: number } {
    const { state, window } = this.#open(user, sealedState);
    try {
      opaque.server.finishLogin({ serverLoginState: state, finishLoginRequest: finish });
    } catch (cause) {
      throw credentials('the login proof does not verify', cause);
    }
    return { window };
  }

  #seal(r: { user: string; state: string; window: number }): Uint8Array {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#stateKey, iv);
    cipher.setAAD(Buffer.from(STATE_LABEL));
    const body = Buffer.concat([cipher.update(codec.pack({ ...r, expires: this.#now() + LOGIN_STATE_TTL_MS })), cipher.final()]);
    return new Uint8Array(Buffer.concat([iv, body, cipher.getAuthTag()]));
  }

  #open(user: string, sealed: Uint8Array): { state: string; window: number } {
    if (!(sealed instanceof Uint8Array) || sealed.length < IV_BYTES + TAG_BYTES + 1) throw credentials('the login state is malformed');
    let r: { user?: unknown; expires?: unknown; state?: unknown; window?: unknown };
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#stateKey, sealed.subarray(0, IV_BYTES));
      decipher.setAAD(Buffer.from(STATE_LABEL));
      decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
      r = codec.unpack(Buffer.concat([decipher.update(sealed.subarray(IV_BYTES, sealed.length - TAG_BYTES)), decipher.final()])) as typeof r;
    } catch (cause) {
      throw credentials('the login state was not made by this organism', cause);
    }
    if (r.user !== user || typeof r.state !== 'string' || typeof r.window !== 'number') throw credentials('the login state belongs to another login');
    if (typeof r.expires !== 'number' || r.expires <= this.#now()) throw credentials('the login took too long: start again');
    return { state: r.state, window: r.window };
  }
}
