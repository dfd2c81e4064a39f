/**
 * What a message says, once opened: the plaintext inside the envelope, JSON in UTF-8.
 * `{ v: 1, text }`, plus in group messages `name` (the group's name) and `roster` (the
 * creator's signed membership, group-roster.ts) — the server sees the group id and its
 * members in the header, never its name. The decoder is strict:
 * a sender's client cannot make ours show anything but text.
 */
import { rosterProblem, type SignedRoster } from '../crypto/group-roster.ts';

export const CONTENT_ERR_FORMAT = 'CONTENT_ERR_FORMAT';
/** The longest text a message carries, in UTF-16 code units. */
export const MAX_TEXT = 16_000;
/** The longest group name. */
export const MAX_GROUP_NAME = 64;

export interface Content {
  v: 1;
  text: string;
  name?: string;
  roster?: SignedRoster;
}

export class ContentError extends Error {
  readonly code = CONTENT_ERR_FORMAT;
}

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function problem(c: unknown): string | null {
  if (typeof c !== 'object' || c === null || Array.isArray(c)) return 'content is not an object';
  const o = c as Record<string, unknown>;
  for (const k of Object.keys(o)) if (k !== 'v' && k !== 'text' && k !== 'name' && k !== 'roster') return `unknown content field ${JSON.stringify(k)}`;
  if (o['v'] !== 1) return 'content.v must be 1';
  const text = o['text'];
  if (typeof text !== 'string' || text.length === 0 || text.length > MAX_TEXT || !text.isWellFormed()) return `content.text must be 1..${MAX_TEXT} characters of well-formed text`;
  if ('name' in o) {
    const name = o['name'];
    if (typeof name !== 'string' || name.length === 0 || name.length > MAX_GROUP_NAME || !name.isWellFormed()) return `content.name must be 1..${MAX_GROUP_NAME} characters`;
  }
  if ('roster' in o) {
    const r = rosterProblem(o['roster']);
    if (r) return `content.${r}`;
    if (typeof (o['roster'] as { sig?: unknown }).sig !== 'string') return 'content.roster must be signed';
  }
  return null;
}

export function encodeContent(c: Content): Uint8Array {
  const p = problem(c);
  if (p) throw new ContentError(p);
  return enc.encode(JSON.stringify({ v: 1, text: c.text, ...(c.name === undefined ? {} : { name: c.name }), ...(c.roster === undefined ? {} : { roster: c.roster }) }));
}

export function decodeContent(bytes: Uint8Array): Content {
  let parsed: unknown;
  try {
    parsed = JSON.parse(dec.decode(bytes));
  } catch (cause) {
    throw new ContentError('content is not UTF-8 JSON', { cause });
  }
  const p = problem(parsed);
  if (p) throw new ContentError(p);
  return parsed as Content;
}
