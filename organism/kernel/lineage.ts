/**
 * Lineage certificates: a cell's identity is its public key signed by whoever made it —
 * the organism's root key for the first cells, a parent cell for a child. A cell without a
 * chain to the root is foreign.
 */
import type { KeyObject } from 'node:crypto';
import { codec as packr } from '../wire/codec.ts';
import { CellularError } from '../wire/errors.ts';
import { signBytes, verifyBytes } from './keys.ts';
import { CELL_ID } from './namespace.ts';

export const ROOT_ISSUER = 'root';

export interface Certificate {
  v: 1;
  /** The certified cell's id. */
  cell: string;
  /** Its raw Ed25519 public key. */
  pub: Uint8Array;
  tissue: string;
  host: string;
  /** Birth time, ms since the epoch. */
  born: number;
  /** 0 for cells made by the root key, parent's + 1 otherwise. */
  generation: number;
  /** Replication budget left to this cell (a child gets less than its parent had). */
  budget: number;
  /** Parent cell id, or null for cells made by the root. */
  parent: string | null;
  /** `root` or the signing cell's id. */
  issuer: string;
  sig: Uint8Array;
}

/**
 * The Hayflick rule: a cell with replication budget `b` may divide while b ≥ 1; each
 * division costs it one, and the child starts with less than half of what was left, so a
 * lineage can never replicate without bound (a chain from budget 16 is at most 5 deep).
 */
export function childBudget(parentBudget: number): number {
  return Math.max(0, Math.floor((parentBudget - 1) / 2));
}

export type UnsignedCertificate = Omit<Certificate, 'sig' | 'v'>;


function signedPart(c: UnsignedCertificate): Uint8Array {
  return packr.pack([1, c.cell, c.pub, c.tissue, c.host, c.born, c.generation, c.budget, c.parent, c.issuer]);
}

export function issueCertificate(fields: UnsignedCertificate, issuerKey: KeyObject): Certificate {
  return { v: 1, ...fields, pub: new Uint8Array(fields.pub), sig: signBytes(issuerKey, signedPart(fields)) };
}

/** Validates the shape of untrusted data; returns a Certificate or throws TRUST_ERR_CERTIFICATE. */
export function parseCertificate(value: unknown): Certificate {
  const bad = (why: string) => new CellularError('TRUST_ERR_CERTIFICATE', `certificate rejected: ${why}`);
  if (typeof value !== 'object' || value === null) throw bad('not an object');
  const c = value as Record<string, unknown>;
  if (c.v !== 1) throw bad('version is not 1');
  if (typeof c.cell !== 'string' || !CELL_ID.test(c.cell)) throw bad('cell id malformed');
  if (!(c.pub instanceof Uint8Array) || c.pub.length !== 32) throw bad('pub is not 32 bytes');
  if (!(c.sig instanceof Uint8Array) || c.sig.length !== 64) throw bad('sig is not 64 bytes');
  if (typeof c.tissue !== 'string' || c.tissue.length === 0 || c.tissue.length > 32) throw bad('tissue malformed');
  if (typeof c.host !== 'string' || c.host.length === 0 || c.host.length > 255) throw bad('host malformed');
  for (const k of ['born', 'generation', 'budget'] as const) {
    if (typeof c[k] !== 'number' || !Number.isSafeInteger(c[k]) || (c[k] as number) < 0) throw bad(`${k} is not a non-negative integer`);
  }
  if (c.parent !== null && (typeof c.parent !== 'string' || !CELL_ID.test(c.parent))) throw bad('parent malformed');
  if (typeof c.issuer !== 'string' || (c.issuer !== ROOT_ISSUER && !CELL_ID.test(c.issuer))) throw bad('issuer malformed');
  return c as unknown as Certificate;
}

/** Checks the signature of one link; the caller walks the chain (see CertBook). */
export function certificateSignedBy(cert: Certificate, issuerKey: KeyObject): boolean {
  return verifyBytes(issuerKey, signedPart(cert), cert.sig);
}

/** Certificates as stored in the lineage bucket. */
export function packCertificate(cert: Certificate): Uint8Array {
  return packr.pack(cert);
}

/** Inverse of packCertificate; still untrusted until a CertBook verified it. */
export function unpackCertificate(bytes: Uint8Array): unknown {
  return packr.unpack(bytes);
}
