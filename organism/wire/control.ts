/**
 * Controls: what an operator may ask of a live organism from the dashboard. One schema for
 * the page's frames, the dashboard cell and the operator (grow), checked at each hop.
 */
import { CellularError } from './errors.ts';

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

const NAME = /^[a-z0-9][a-z0-9-]{0,63}$/;

function bad(message: string): CellularError {
  return new CellularError('DASHBOARD_ERR_CONTROL', message);
}

function name(v: unknown, field: string): string {
  if (typeof v !== 'string' || !NAME.test(v)) throw bad(`${field} must be a cell or tissue name (lowercase letters, digits, dashes), received ${JSON.stringify(v)?.slice(0, 80)}`);
  return v;
}

function int(v: unknown, field: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw bad(`${field} must be an integer from ${min} to ${max}, received ${JSON.stringify(v)?.slice(0, 80)}`);
  return v;
}

/** Checks an untrusted control; unknown fields are refused so a typo is not silently ignored. */
export function parseControl(value: unknown, limits: { loadMaxRate: number; loadMaxSeconds: number }): Control {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad('a control must be an object');
  const v = value as Record<string, unknown>;
  const allowed: Record<string, readonly string[]> = {
    kill: ['action', 'cell'], load: ['action', 'tissue', 'rate', 'seconds'], inject: ['action', 'tissue', 'fault'], chaos: ['action', 'scenario', 'seed'], shutdown: ['action'],
  };
  const fields = typeof v.action === 'string' && Object.hasOwn(allowed, v.action) ? allowed[v.action]! : undefined;
  if (!fields) throw bad(`control.action must be one of ${CONTROL_ACTIONS.join(', ')}, received ${JSON.stringify(v.action)?.slice(0, 80)}`);
  const extra = Object.keys(v).find((k) => !fields.includes(k));
  if (extra !== undefined) throw bad(`a ${String(v.action)} control has no field ${JSON.stringify(extra).slice(0, 80)}`);
  switch (v.action) {
    case 'kill':
      return { action: 'kill', cell: name(v.cell, 'cell') };
    case 'load':
      return { action: 'load', tissue: name(v.tissue, 'tissue'), rate: int(v.rate, 'rate', 1, limits.loadMaxRate), seconds: int(v.seconds, 'seconds', 1, limits.loadMaxSeconds) };
    case 'inject': {
      if (typeof v.fault !== 'string' || !(FAULT_KINDS as readonly string[]).includes(v.fault)) throw bad(`fault must be one of ${FAULT_KINDS.join(', ')}, received ${JSON.stringify(v.fault)?.slice(0, 80)}`);
      return { action: 'inject', tissue: name(v.tissue, 'tissue'), fault: v.fault as FaultKind };
    }
    case 'chaos':
      return { action: 'chaos', scenario: name(v.scenario, 'scenario'), seed: v.seed === undefined ? 1 : int(v.seed, 'seed', 0, 2 ** 32 - 1) };
    default:
      return { action: 'shutdown' };
  }
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
