/**
 * Injected faults: a test-only way to start a misbehaving cell, so the immune system can be
 * tested against real misbehaviour. A fault is chosen only by the `--fault <kind>` argument
 * of a cell process, which only the test helpers and simulations pass (through
 * spawnCell's `fault` option): nothing a client or the network sends can set a process's
 * command line, and an honest cell never passes a fault to a child.
 *
 * - `flood`: publishes pulses at ten times immune.floodPerSecond.
 * - `liar`: its pulses claim a full core and full load (it idles).
 * - `forger`: sends signed hormones with bad bodies, and votes and toxins for trials that
 *   never were.
 * - `tamper`: its pulses carry a genome hash other than the organism's.
 * - `cancer`: divides every 150 ms, ignoring homeostasis and its replication budget, and
 *   its children do the same (at most CANCER_MAX_CHILDREN each, so a test whose immune
 *   system fails still cannot fork-bomb the machine).
 */
import { CellularError } from '../../organism/wire/errors.ts';
import { sealUnchecked, type Signer } from '../../organism/kernel/hormone.ts';
import type { ImmuneGene } from '../../organism/kernel/genome/index.ts';
import type { PulseBody } from '../../organism/kernel/vocabulary.ts';

// The fault names are a wire contract (the dashboard's controls name them); their behaviour lives here.
import { FAULT_KINDS, type FaultKind } from '../../organism/wire/control.ts';
export { FAULT_KINDS, type FaultKind };

/** Children one cancerous cell makes at most. */
export const CANCER_MAX_CHILDREN = 24;
const CANCER_EVERY_MS = 150;

/** The fault named by `--fault <kind>` on a command line, if any; an unknown kind is refused. */
export function faultFromArgv(argv: readonly string[]): FaultKind | undefined {
  const i = argv.indexOf('--fault');
  if (i < 0) return undefined;
  const kind = argv[i + 1];
  if (!(FAULT_KINDS as readonly string[]).includes(kind ?? '')) {
    throw new CellularError('CELL_ERR_BIRTH_PACKET', `--fault must be one of ${FAULT_KINDS.join(', ')}, received ${JSON.stringify(kind)}`);
  }
  return kind as FaultKind;
}

/** Another 16-hex genome hash than `hash` (what a tampered cell would run). */
export function tamperedHash(hash: string): string {
  return [...hash].map((c) => ((parseInt(c, 16) + 1) % 16).toString(16)).join('');
}

export interface FaultDeps {
  gene: ImmuneGene;
  signer: Signer;
  publishRaw(kind: string, bytes: Uint8Array): void;
  publishPulse(body: PulseBody): void;
  pulse(): PulseBody;
  /** Living peers' ids (targets for forged toxins). */
  peers(): string[];
  /** Spawns a cancerous child of this cell's tissue. */
  divide(): Promise<unknown>;
  log: { warn(o: object, m: string): void };
}

/** Starts the main-thread part of a fault (liar and tamper live in the pulses); returns its stop. */
export function startFault(kind: FaultKind, d: FaultDeps): () => void {
  const timers: NodeJS.Timeout[] = [];
  const every = (ms: number, f: () => void) => {
    const t = setInterval(() => {
      try {
        f();
      } catch (e) {
        d.log.warn({ err: (e as Error).message }, `fault ${kind}`);
      }
    }, ms);
    timers.push(t);
  };
  switch (kind) {
    case 'flood': {
      const perTick = Math.max(1, Math.ceil((d.gene.floodPerSecond * 10) / 50));
      every(20, () => {
        for (let i = 0; i < perTick; i++) d.publishPulse(d.pulse());
      });
      break;
    }
    case 'forger': {
      let n = 0;
      every(300, () => {
        // It forges once it knows whom to name: a forger caught for its first bad body before
        // its census knew a peer would never have sent a toxin (a loaded CI run saw that).
        const peers = d.peers();
        if (peers.length === 0) return;
        n++;
        const fake = `forged-${n}`;
        const victim = peers[n % peers.length]!;
        d.publishRaw('toxin', sealUnchecked(d.signer, 'toxin', { accusation: fake, accused: victim, cell: victim, pid: 1, host: 'nowhere' }));
        d.publishRaw('vote', sealUnchecked(d.signer, 'vote', { accusation: fake, accused: victim, guilty: true, detail: 'forged' }));
        // A vote whose body has no shape at all, signed with our own key.
        d.publishRaw('vote', sealUnchecked(d.signer, 'vote', { guilty: 'very', n }));
      });
      break;
    }
    case 'cancer': {
      let made = 0;
      every(CANCER_EVERY_MS, () => {
        if (made >= CANCER_MAX_CHILDREN) return;
        made++;
        d.divide().catch((e: unknown) => d.log.warn({ err: (e as Error).message }, 'cancer: division failed'));
      });
      break;
    }
    case 'liar':
    case 'tamper':
      break;
  }
  return () => timers.forEach(clearInterval);
}
