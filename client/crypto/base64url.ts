/**
 * Base64url without padding (RFC 4648 §5), the form ids, OPAQUE's keys and roster
 * signatures take. Isomorphic: btoa/atob exist in browsers and in Node ≥ 16.
 */
export const toBase64url = (b: Uint8Array): string => btoa(String.fromCharCode(...b)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');

/** The bytes of `s`; throws (atob's DOMException) on anything that is not base64url. */
export function fromBase64url(s: string): Uint8Array {
  const b64 = s.replace(/-/g, '+').replace(/_/g, '/');
  return Uint8Array.from(atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4)), (c) => c.charCodeAt(0));
}
