/**
 * What a message says, once opened: the plaintext inside the envelope, JSON in UTF-8.
 * `{ v: 1, text }`, plus `name` (the group's name) in group messages — the server sees
 * the group id and its members in the header, never its name. The decoder is strict:
 * a sender's client cannot make ours show anything but text.
 */
export const CONTENT_ERR_FORMAT = 'CONTENT_ERR_FORMAT';
/** The longest text a message carries, in UTF-16 code units. */
export const MAX_TEXT = 16_000;
/** The longest group name. */
export const MAX_GROUP_NAME = 64;

export interface Content {
  v: 1;
  text: string;
  name?: string;
}

export class ContentError extends Error {
  readonly code = CONTENT_ERR_FORMAT;
}

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function problem(c: unknown): string | null {
  if (typeof c !== 'object' || c === null || Array.isArray(c)) return 'content is not an object';
  const o = c as Record<string, unknown>;
  for (const k of Object.keys(o)) if (k !== 'v' && k !== 'text' && k !== 'name') return `unknown content field ${JSON.stringify(k)}`;
  if (o['v'] !== 1) return 'content.v must be 1';
  const text = o['text'];
  if (typeof text !== 'string' || text.length === 0 || text.length > MAX_TEXT || !text.isWellFormed()) return `content.text must be 1..${MAX_TEXT} characters of well-formed text`;
  if ('name' in o) {
    const name = o['name'];
    if (typeof name !== 'string' || name.length === 0 || name.length > MAX_GROUP_NAME || !name.isWellFormed()) return `content.name must be 1..${MAX_GROUP_NAME} characters`;
  }
  return null;
}

export function encodeContent(c: Content): Uint8Array {
  const p = problem(c);
  if (p) throw new ContentError(p);
  return enc.encode(JSON.stringify(c.name === undefined ? { v: 1, text: c.text } : { v: 1, text: c.text, name: c.name }));
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
