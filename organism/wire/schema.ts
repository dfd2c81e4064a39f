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
  /** The boundary carries JSON (the genome, dashboard frames): messages say "an object" and "null", not "a map" and "nil". */
  readonly json?: boolean;
  /** The boundary's strings are settings, never secrets (the genome): messages quote them. */
  readonly quoteStrings?: boolean;
  /**
   * A field the shape lacks: by default `<prefix>"key" is not a field`, raising `code`; a
   * boundary may name it its own way and with its own code (the genome lists the known fields).
   */
  readonly unknownField?: (prefix: string, key: string, known: readonly string[]) => CellularError;
  /**
   * Fields a shape lacks are let through, neither refused nor copied: for bodies a newer peer
   * may extend (hormones), where the receiver reads only what it knows.
   */
  readonly open?: boolean;
}

/**
 * Checks one value and returns it rebuilt; `at` names it in errors. A check made here also
 * has `test`: the same rule as a yes or no that builds nothing (no copy, no path string), for
 * a hot path (`fits`, every hormone body of every pulse); a check without one is tried.
 */
export type Check<T, L extends string = never> = ((value: unknown, at: string, ctx: CheckContext<L>) => T) & { readonly test?: Test<L> };
export type Test<L extends string = never> = (value: unknown, ctx: CheckContext<L>) => boolean;
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

/**
 * A value as a message may name it: its kind and size, never its content — unless the
 * context says its strings are settings (then quoted, cut short).
 */
export function describe(value: unknown, ctx?: Pick<CheckContext<string>, 'json' | 'quoteStrings'>): string {
  if (value === undefined) return 'nothing';
  if (value === null) return ctx?.json ? 'null' : 'nil';
  if (typeof value === 'string') return ctx?.quoteStrings ? quote(value) : `a string of ${value.length} characters`;
  if (value instanceof Uint8Array) return `${value.length} bytes`;
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === 'object') return isMap(value) ? (ctx?.json ? 'an object' : 'a map') : ctx?.json ? 'an object of a class' : 'a msgpack extension value';
  return `${typeof value} ${String(value)}`;
}

/** A string for a message, quoted and cut short: never a password or token, only names and ids. */
export const quote = (s: string): string => JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}…` : s);

export function fail(ctx: Pick<CheckContext<string>, 'code' | 'json' | 'quoteStrings'>, at: string, expected: string, value: unknown): never {
  throw new CellularError(ctx.code, `${at} must be ${expected}, received ${describe(value, ctx)}`);
}

/** A check's test; a check without one is tried (what it builds is thrown away). */
export const testOf = <L extends string>(check: Check<unknown, L>): Test<L> =>
  check.test ??
  ((value, ctx) => {
    try {
      check(value, '', ctx);
      return true;
    } catch {
      return false;
    }
  });

/** A check from its test and what it expects: the value itself is returned (a leaf: a number, a string). */
export const leaf = <T, L extends string = never>(test: Test<L>, expected: (ctx: CheckContext<L>) => string): Check<T, L> =>
  Object.assign((value: unknown, at: string, ctx: CheckContext<L>): T => (test(value, ctx) ? (value as T) : fail(ctx, at, expected(ctx), value)), { test });

/** A plain map: an object literal or a null-prototype object (what msgpackr and JSON.parse make). */
export function isMap(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function bound<L extends string>(max: number | L, ctx: CheckContext<L>): [number, string] {
  return typeof max === 'number' ? [max, ''] : [ctx.limits[max], ` (${ctx.limitPrefix}${max})`];
}
const top = <L extends string>(max: number | L, ctx: CheckContext<L>): number => (typeof max === 'number' ? max : ctx.limits[max]);

const span = (min: number, max: number) => (max >= Number.MAX_SAFE_INTEGER ? `at least ${min}` : `${min} to ${max}`);

export const int = <L extends string = never>(min: number, max: number | L = Number.MAX_SAFE_INTEGER): Check<number, L> =>
  leaf<number, L>(
    typeof max === 'number'
      ? (value) => typeof value === 'number' && Number.isSafeInteger(value) && value >= min && value <= max
      : (value, ctx) => typeof value === 'number' && Number.isSafeInteger(value) && value >= min && value <= ctx.limits[max],
    (ctx) => {
      const [most, note] = bound(max, ctx);
      return `an integer from ${span(min, most)}${note}`;
    },
  );

/** A finite number in [min, max], fractions allowed. */
export const finite = (min: number, max: number): Check<number, never> =>
  leaf(
    (value) => typeof value === 'number' && Number.isFinite(value) && value >= min && value <= max,
    () => `a number from ${min} to ${max}`,
  );

export const text = (min: number, max: number): Check<string, never> =>
  leaf(
    (value) => typeof value === 'string' && value.length >= min && value.length <= max,
    () => `a string of ${span(min, max)} characters`,
  );

/** A string matching `pattern`; a mismatch is quoted in the message (for names and ids, never secrets). */
export const matching = (pattern: RegExp, what: string): Check<string, never> =>
  Object.assign(
    (value: unknown, at: string, ctx: CheckContext): string => {
      if (typeof value !== 'string') fail(ctx, at, what, value);
      if (!pattern.test(value)) throw new CellularError(ctx.code, `${at} must be ${what}, received ${quote(value)}`);
      return value;
    },
    { test: (value: unknown) => typeof value === 'string' && pattern.test(value) },
  );

export const bool: Check<boolean, never> = leaf((value) => typeof value === 'boolean', () => 'true or false');

export const oneOf = <T extends string>(...values: readonly T[]): Check<T, never> =>
  leaf(
    (value) => values.includes(value as T),
    () => `one of ${values.map(quote).join(', ')}`,
  );

export const orNull = <T, L extends string = never>(check: Check<T, L>): Check<T | null, L> => {
  const test = testOf(check);
  return Object.assign((value: unknown, at: string, ctx: CheckContext<L>) => (value === null ? null : check(value, at, ctx)), {
    test: (value: unknown, ctx: CheckContext<L>) => value === null || test(value, ctx),
  });
};

/** Bytes of a length in [min, max]. */
export const bytes = (min: number, max: number): Check<Uint8Array, never> =>
  leaf((value) => value instanceof Uint8Array && value.length >= min && value.length <= max, () => (min === max ? `bin of ${min} bytes` : `bin of ${min}..${max} bytes`));

/** An array of [min, max] entries, each checked; with `distinct`, no two entries may share a key. */
export const list = <T, L extends string = never>(item: Check<T, L>, min: number, max: number | L, distinct?: (x: T) => string): Check<T[], L> => {
  const check = (value: unknown, at: string, ctx: CheckContext<L>): T[] => {
    const [most, note] = bound(max, ctx);
    if (!Array.isArray(value) || value.length < min || value.length > most) fail(ctx, at, `an array of ${span(min, most)} entries${note}`, value);
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
  if (distinct !== undefined) return check; // distinctness needs the checked entries: tried, not tested
  const itemTest = testOf(item);
  const test = (value: unknown, ctx: CheckContext<L>): boolean => {
    if (!Array.isArray(value) || value.length < min || value.length > top(max, ctx)) return false;
    for (let i = 0; i < value.length; i++) if (!itemTest(value[i], ctx)) return false;
    return true;
  };
  return Object.assign(check, { test });
};

/**
 * A map of names to entries of one kind (the genome's tissues): each key checked (named
 * `at["key"]` in errors), each entry at `at.key`. Rebuilt with own keys only.
 */
export const record = <T, L extends string = never>(key: Check<string, L>, entry: Check<T, L>, max: number | L = Number.MAX_SAFE_INTEGER): Check<Record<string, T>, L> => {
  const check = (value: unknown, at: string, ctx: CheckContext<L>): Record<string, T> => {
    if (!isMap(value)) fail(ctx, at, ctx.json ? 'an object' : 'a map', value);
    const [most, note] = bound(max, ctx);
    const keys = Object.keys(value);
    if (keys.length > most) fail(ctx, at, `${ctx.json ? 'an object' : 'a map'} of at most ${most} entries${note}`, value);
    // fromEntries defines own properties: no key, not even "__proto__", reaches a prototype.
    return Object.fromEntries(keys.map((k) => [key(k, `${at}[${quote(k)}]`, ctx), entry(value[k], `${at}.${k}`, ctx)]));
  };
  const keyTest = testOf(key);
  const entryTest = testOf(entry);
  const test = (value: unknown, ctx: CheckContext<L>): boolean => {
    if (!isMap(value)) return false;
    let n = 0;
    for (const k of Object.keys(value)) if (++n > top(max, ctx) || !keyTest(k, ctx) || !entryTest(value[k], ctx)) return false;
    return true;
  };
  return Object.assign(check, { test });
};

/** A map whose content another module judges (a lineage certificate): any plain map, returned as is. */
export const anyMap: Check<Record<string, unknown>, never> = leaf(isMap, (ctx) => (ctx.json ? 'an object' : 'a map'));

function unknownField<L extends string>(ctx: CheckContext<L>, prefix: string, key: string, shape: AnyShape<L>): CellularError {
  return ctx.unknownField?.(prefix, key, Object.keys(shape)) ?? new CellularError(ctx.code, `${prefix}${quote(key)} is not a field`);
}

/**
 * Checks a map against its shape into a fresh object. A field whose value is undefined
 * (msgpack's fixext 0, which msgpackr writes for undefined) counts as absent; `reserved`
 * keys (a frame's `v` and `t`) are neither refused nor copied, nor, in an `open` context,
 * any key the shape lacks.
 */
export function fields<L extends string>(raw: Record<string, unknown>, shape: AnyShape<L>, prefix: string, ctx: CheckContext<L>, reserved: readonly string[] = []): Record<string, unknown> {
  if (!ctx.open) {
    for (const key of Object.keys(raw)) {
      if (raw[key] !== undefined && !Object.hasOwn(shape, key) && !reserved.includes(key)) throw unknownField(ctx, prefix, key, shape);
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

/**
 * A shape as a yes-or-no test that builds nothing: the hot path's form of `fields` (same
 * rules, no message). Shape keys are never Object.prototype's names, so plain reads suffice.
 */
export function shapeTest<L extends string>(shape: AnyShape<L>): Test<L> {
  const keys = Object.keys(shape);
  const tests = keys.map((k) => testOf(shape[k]!.check));
  const optional = keys.map((k) => shape[k]!.optional);
  const strict: Test<L> = (value, ctx) => {
    if (ctx.open) return true;
    for (const key in value as Record<string, unknown>) if ((value as Record<string, unknown>)[key] !== undefined && !Object.hasOwn(shape, key)) return false;
    return true;
  };
  return (value, ctx) => {
    if (!isMap(value) || !strict(value, ctx)) return false;
    for (let i = 0; i < keys.length; i++) {
      const v = value[keys[i]!];
      if (v === undefined ? !optional[i] : !tests[i]!(v, ctx)) return false;
    }
    return true;
  };
}

/** A nested map of a known shape; its test is made on first use (most maps are only ever checked). */
export const map = <T, L extends string = never>(shape: Shape<T, L>): Check<T, L> => {
  let test: Test<L> | undefined;
  return Object.assign(
    (value: unknown, at: string, ctx: CheckContext<L>): T => {
      if (!isMap(value)) fail(ctx, at, ctx.json ? 'an object' : 'a map', value);
      return fields(value, shape as AnyShape<L>, `${at}.`, ctx) as T;
    },
    { test: (value: unknown, ctx: CheckContext<L>) => (test ??= shapeTest(shape as AnyShape<L>))(value, ctx) },
  );
};

/** Checks a whole value against a shape at a boundary (a request, a control): `what` names it in errors. */
export function checkShape<T, L extends string = never>(value: unknown, shape: Shape<T, L>, what: string, ctx: CheckContext<L>): T {
  if (!isMap(value)) fail(ctx, what, ctx.json ? 'an object' : 'a map', value);
  return fields(value, shape as AnyShape<L>, `${what}: `, ctx) as T;
}

/** A context without named limits, raising `code`. */
export const plain = (code: ErrorCode): CheckContext => Object.freeze({ code, limits: {}, limitPrefix: '' });
