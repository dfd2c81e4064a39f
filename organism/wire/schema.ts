/**
 * One way to check data that crosses a boundary (client and dashboard frames, controls, worker
 * requests, hormone bodies, the genome): a shape is a map of fields, each with a check, and
 * the type keeps shape and data type in step. A check returns the value rebuilt from fresh
 * literals holding only the shape's fields, so nothing a peer sends can reach a prototype.
 * Every failure is a CellularError with the boundary's own code, and its message names the
 * field, what was expected and what was received — never the value of a string that could be
 * a secret, only its length (ids and names are quoted, cut short).
 *
 * Isomorphic: the browser bundles it.
 */
import { CellularError, type ErrorCode } from './errors.ts';

/**
 * What checks consult: the code a failure raises and the named numeric limits a check may be
 * bounded by (`int(1, 'pageMax')`), with the prefix that names them in messages.
 */
export interface CheckContext<L extends string = never> {
  readonly code: ErrorCode;
  readonly limits: Readonly<Record<L, number>>;
  /** How limits are named in messages: `messenger.` gives "(messenger.pageMax)". */
  readonly limitPrefix: string;
}

/** Checks one value and returns it rebuilt; `at` names it in errors. */
export type Check<T, L extends string = never> = (value: unknown, at: string, ctx: CheckContext<L>) => T;
export interface Field<T, L extends string = never> {
  readonly check: Check<T, L>;
  readonly optional: boolean;
}
/** A map's fields (less the `v` and `t` a frame carries), each with its check. */
export type Shape<F, L extends string = never> = { readonly [K in Exclude<keyof F, 't' | 'v'>]-?: Field<F[K], L> };
export type AnyShape<L extends string = never> = Readonly<Record<string, Field<unknown, L>>>;
/** One shape per member of a union tagged by `t`. */
export type Schemas<U extends { t: string }, L extends string = never> = { readonly [T in U['t']]: Shape<Extract<U, { t: T }>, L> };

export const req = <T, L extends string = never>(check: Check<T, L>): Field<T, L> => ({ check, optional: false });
export const opt = <T, L extends string = never>(check: Check<T, L>): Field<T | undefined, L> => ({ check, optional: true });

/** A value as a message may name it: its kind and size, never its content. */
export function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'nil';
  if (typeof value === 'string') return `a string of ${value.length} characters`;
  if (value instanceof Uint8Array) return `${value.length} bytes`;
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === 'object') return isMap(value) ? 'a map' : 'a msgpack extension value';
  return `${typeof value} ${String(value)}`;
}

/** A string for a message, quoted and cut short: never a password or token, only names and ids. */
export const quote = (s: string): string => JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}…` : s);

export function fail(ctx: { readonly code: ErrorCode }, at: string, expected: string, value: unknown): never {
  throw new CellularError(ctx.code, `${at} must be ${expected}, received ${describe(value)}`);
}

/** A plain map: an object literal or a null-prototype object (what msgpackr and JSON.parse make). */
export function isMap(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function bound<L extends string>(max: number | L, ctx: CheckContext<L>): [number, string] {
  return typeof max === 'number' ? [max, ''] : [ctx.limits[max], ` (${ctx.limitPrefix}${max})`];
}

const span = (min: number, max: number) => (max >= Number.MAX_SAFE_INTEGER ? `at least ${min}` : `${min} to ${max}`);

export const int =
  <L extends string = never>(min: number, max: number | L = Number.MAX_SAFE_INTEGER): Check<number, L> =>
  (value, at, ctx) => {
    const [top, note] = bound(max, ctx);
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > top) fail(ctx, at, `an integer from ${span(min, top)}${note}`, value);
    return value;
  };

export const text =
  (min: number, max: number): Check<string, never> =>
  (value, at, ctx) => {
    if (typeof value !== 'string' || value.length < min || value.length > max) fail(ctx, at, `a string of ${span(min, max)} characters`, value);
    return value;
  };

export const matching =
  (pattern: RegExp, what: string): Check<string, never> =>
  (value, at, ctx) => {
    if (typeof value !== 'string') fail(ctx, at, what, value);
    if (!pattern.test(value)) throw new CellularError(ctx.code, `${at} must be ${what}, received ${quote(value)}`);
    return value;
  };

export const bool: Check<boolean, never> = (value, at, ctx) => {
  if (typeof value !== 'boolean') fail(ctx, at, 'true or false', value);
  return value;
};

export const oneOf =
  <T extends string>(...values: readonly T[]): Check<T, never> =>
  (value, at, ctx) => {
    if (!values.includes(value as T)) fail(ctx, at, `one of ${values.map(quote).join(', ')}`, value);
    return value as T;
  };

export const orNull =
  <T, L extends string = never>(check: Check<T, L>): Check<T | null, L> =>
  (value, at, ctx) =>
    value === null ? null : check(value, at, ctx);

/** Bytes of a length in [min, max]. */
export const bytes =
  (min: number, max: number): Check<Uint8Array, never> =>
  (value, at, ctx) => {
    if (!(value instanceof Uint8Array) || value.length < min || value.length > max) fail(ctx, at, min === max ? `bin of ${min} bytes` : `bin of ${min}..${max} bytes`, value);
    return value;
  };

/** An array of [min, max] entries, each checked; with `distinct`, no two entries may share a key. */
export const list =
  <T, L extends string = never>(item: Check<T, L>, min: number, max: number | L, distinct?: (x: T) => string): Check<T[], L> =>
  (value, at, ctx) => {
    const [top, note] = bound(max, ctx);
    if (!Array.isArray(value) || value.length < min || value.length > top) fail(ctx, at, `an array of ${span(min, top)} entries${note}`, value);
    const seen = new Set<string>();
    return value.map((x, i) => {
      const checked = item(x, `${at}[${i}]`, ctx);
      const k = distinct?.(checked);
      if (k !== undefined) {
        if (seen.has(k)) throw new CellularError(ctx.code, `${at}[${i}] repeats ${quote(k)}: entries must be distinct`);
        seen.add(k);
      }
      return checked;
    });
  };

/**
 * Checks a map against its shape into a fresh object. A field whose value is undefined
 * (msgpack's fixext 0, which msgpackr writes for undefined) counts as absent; `reserved`
 * keys (a frame's `v` and `t`) are neither refused nor copied.
 */
export function fields<L extends string>(raw: Record<string, unknown>, shape: AnyShape<L>, prefix: string, ctx: CheckContext<L>, reserved: readonly string[] = []): Record<string, unknown> {
  for (const key of Object.keys(raw)) {
    if (raw[key] !== undefined && !Object.hasOwn(shape, key) && !reserved.includes(key)) {
      throw new CellularError(ctx.code, `${prefix}${quote(key)} is not a field`);
    }
  }
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(shape)) {
    const value = Object.hasOwn(raw, key) ? raw[key] : undefined;
    if (value === undefined) {
      if (!field.optional) throw new CellularError(ctx.code, `${prefix}${key} is missing`);
      continue;
    }
    out[key] = field.check(value, `${prefix}${key}`, ctx);
  }
  return out;
}

/** A nested map of a known shape. */
export const map =
  <T, L extends string = never>(shape: Shape<T, L>): Check<T, L> =>
  (value, at, ctx) => {
    if (!isMap(value)) fail(ctx, at, 'a map', value);
    return fields(value, shape as AnyShape<L>, `${at}.`, ctx) as T;
  };

/** Checks a whole value against a shape at a boundary (a request, a control): `what` names it in errors. */
export function checkShape<T, L extends string = never>(value: unknown, shape: Shape<T, L>, what: string, ctx: CheckContext<L>): T {
  if (!isMap(value)) fail(ctx, what, 'a map', value);
  return fields(value, shape as AnyShape<L>, `${what}: `, ctx) as T;
}

/** A context without named limits, raising `code`. */
export const plain = (code: ErrorCode): CheckContext => Object.freeze({ code, limits: {}, limitPrefix: '' });
