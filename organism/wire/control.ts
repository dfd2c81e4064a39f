/**
 * Controls: what an operator may ask of a live organism from the dashboard. One schema for
 * the page's frames, the dashboard cell and the operator (grow), checked at each hop with
 * organism/wire/schema.ts; a bad control is DASHBOARD_ERR_CONTROL naming the field.
 */
import { CellularError } from './errors.ts';
import { checkShape, fields, int, matching, oneOf, opt, quote, req, type CheckContext, type Shape } from './schema.ts';

/** The faults a cell can be born with, to test the immune system (cells/immune/faults.ts). */
export type FaultKind = 'flood' | 'liar' | 'forger' | 'tamper' | 'cancer';
export const FAULT_KINDS: readonly FaultKind[] = ['flood', 'liar', 'forger', 'tamper', 'cancer'];

export type Control =
  | { action: 'kill'; cell: string }
  | { action: 'load'; tissue: string; rate: number; seconds: number }
  | { action: 'inject'; tissue: string; fault: FaultKind }
  | { action: 'chaos'; scenario: string; seed: number }
  | { action: 'shutdown' };

export const CONTROL_ACTIONS = ['kill', 'load', 'inject', 'chaos', 'shutdown'] as const;

/** What the operator did, as recorded in the flight recorder and shown in the event log. */
export interface ControlRecord {
  ts: number;
  /** Who asked: the dashboard cell, and the page's connection there. */
  by: string;
  control: Control;
  ok: boolean;
  message: string;
}

/** The genome's dashboard limits a control is held to (dashboard.* fields of the same names). */
export interface ControlLimits {
  loadMaxRate: number;
  loadMaxSeconds: number;
}
type Limit = keyof ControlLimits;

const name = req(matching(/^[a-z0-9][a-z0-9-]{0,63}$/, 'a cell or tissue name (lowercase letters, digits, dashes)'));

/** Each action's fields (less `action`); a chaos seed left out is 1. */
type Fields<A extends Control['action']> = Omit<Extract<Control, { action: A }>, 'action'>;
const SHAPES: { readonly [A in Control['action']]: Shape<A extends 'chaos' ? { scenario: string; seed?: number } : Fields<A>, Limit> } = {
  kill: { cell: name },
  load: { tissue: name, rate: req(int(1, 'loadMaxRate')), seconds: req(int(1, 'loadMaxSeconds')) },
  inject: { tissue: name, fault: req(oneOf(...FAULT_KINDS)) },
  chaos: { scenario: name, seed: opt(int(0, 2 ** 32 - 1)) },
  shutdown: {},
};

const contextOf = (limits: ControlLimits): CheckContext<Limit> => ({
  code: 'DASHBOARD_ERR_CONTROL',
  limits,
  limitPrefix: 'dashboard.',
  json: true,
  unknownField: (prefix, key) => new CellularError('DASHBOARD_ERR_CONTROL', `a ${prefix.slice(0, -1)} control has no field ${quote(key)}`),
});

/** Checks an untrusted control; unknown fields are refused so a typo is not silently ignored. */
export function parseControl(value: unknown, limits: ControlLimits): Control {
  const ctx = contextOf(limits);
  const { action } = checkShape<{ action: Control['action'] }, Limit>(value, { action: req(oneOf(...CONTROL_ACTIONS)) }, 'control', { ...ctx, open: true });
  const checked = fields(value as Record<string, unknown>, SHAPES[action], `${action}.`, ctx, ['action']);
  return (action === 'chaos' ? { action, ...checked, seed: checked.seed ?? 1 } : { action, ...checked }) as Control;
}

/** A control in a few words, for logs. */
export function describeControl(c: Control): string {
  switch (c.action) {
    case 'kill':
      return `kill ${c.cell}`;
    case 'load':
      return `load ${c.tissue} at ${c.rate}/s for ${c.seconds} s`;
    case 'inject':
      return `inject a ${c.fault} ${c.tissue} cell`;
    case 'chaos':
      return `chaos ${c.scenario} (seed ${c.seed})`;
    case 'shutdown':
      return 'shut the organism down';
  }
}
