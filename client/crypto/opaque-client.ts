/**
 * The client's half of OPAQUE (RFC 9807, through @serenity-kit/opaque: ristretto255 OPRF
 * and 3DH, SHA-512, Argon2id key stretching here in the browser). The password stays in
 * this process: the server receives a blinded element, then a registration record or a
 * login proof. Each successful run also yields the export key, 64 bytes only this side
 * can compute, which seals the key backup (key-backup.ts, mode "password").
 *
 * The key stretching is fixed for every account (a login must stretch as its registration
 * did): Argon2id, 64 MiB, 3 passes, 4 lanes — RFC 9106's choice for memory-constrained
 * environments, a second or less in a current browser.
 *
 * Isomorphic: the library carries its WebAssembly inline.
 */
import * as opaque from '@serenity-kit/opaque';
import { fromBase64url } from './base64url.ts';
import { CryptoError } from './envelope.ts';

export const KEY_STRETCHING = Object.freeze({ 'argon2id-custom': Object.freeze({ memory: 65_536, iterations: 3, parallelism: 4 }) });

/** Passwords are 8 to 1024 bytes of UTF-8 (checked here: no server sees one). */
export const PASSWORD_MIN_BYTES = 8;
export const PASSWORD_MAX_BYTES = 1024;

const ksf = () => ({ 'argon2id-custom': { ...KEY_STRETCHING['argon2id-custom'] } });

/** Whether `password` may be chosen (and so could be right). */
export function passwordFits(password: string): boolean {
  const n = new TextEncoder().encode(password).length;
  return n >= PASSWORD_MIN_BYTES && n <= PASSWORD_MAX_BYTES;
}

export interface Started {
  /** Kept here, never sent. */
  state: string;
  /** The first message. */
  request: string;
}

export async function startRegistration(password: string): Promise<Started> {
  await opaque.ready;
  const r = opaque.client.startRegistration({ password });
  return { state: r.clientRegistrationState, request: r.registrationRequest };
}

/** The record the server stores, and the export key. */
export async function finishRegistration(started: Started, response: string, password: string): Promise<{ record: string; exportKey: Uint8Array }> {
  await opaque.ready;
  let r: { registrationRecord: string; exportKey: string };
  try {
    r = opaque.client.finishRegistration({ clientRegistrationState: started.state, registrationResponse: response, password, keyStretching: ksf() });
  } catch (cause) {
    throw new CryptoError('CRYPTO_ERR_FORMAT', 'the server sent a registration response that is not an OPAQUE message', { cause });
  }
  return { record: r.registrationRecord, exportKey: fromBase64url(r.exportKey) };
}

export async function startLogin(password: string): Promise<Started> {
  await opaque.ready;
  const r = opaque.client.startLogin({ password });
  return { state: r.clientLoginState, request: r.startLoginRequest };
}

/**
 * The login proof and the export key, or null when the password is wrong (or the user
 * unknown: the server's fake response fails the same way). Nothing is sent then.
 */
export async function finishLogin(started: Started, response: string, password: string): Promise<{ finish: string; exportKey: Uint8Array } | null> {
  await opaque.ready;
  let r: { finishLoginRequest: string; exportKey: string } | undefined;
  try {
    r = opaque.client.finishLogin({ clientLoginState: started.state, loginResponse: response, password, keyStretching: ksf() });
  } catch {
    r = undefined; // a malformed response opens nothing either
  }
  return r ? { finish: r.finishLoginRequest, exportKey: fromBase64url(r.exportKey) } : null;
}
