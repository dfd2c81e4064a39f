/**
 * Test helper: an organism on a private nats-server, started and stopped by the test
 * (teardown; the reaper covers a crashed worker). Waiting for the population is left to
 * the caller, which may want to listen to hormones from the very first one.
 */
import type { ExecutionContext } from 'ava';
import type { CensusEntry } from '../../organism/kernel/census.ts';
import { loadGenome, type Genome } from '../../organism/kernel/genome/index.ts';
import { Organism, type OrganismOptions } from '../../organism/grow/organism.ts';
import { startNats, tempDir, uniqueId } from './nats.ts';
import { reapOnExit } from './reaper.ts';

export async function startOrganism(t: ExecutionContext, genome: Readonly<Genome>, options: { genomeDir?: string } = {}) {
  const nats = await startNats(t);
  const o = await runOrganism(t, { stateDir: tempDir(t), servers: [nats.url], id: uniqueId(), genome, ...(options.genomeDir ? { genomeDir: options.genomeDir } : {}) });
  return { o, nats };
}

/** Starts an organism as given (its own private broker unless `servers` names one), stopped at teardown (the reaper covers a crashed worker). */
export async function runOrganism(t: ExecutionContext, options: OrganismOptions): Promise<Organism> {
  const o = new Organism(options);
  const unreap = reapOnExit(() => o.emergencyStop());
  t.teardown(async () => {
    await o.stop('test teardown');
    unreap();
  });
  await o.start();
  return o;
}

/**
 * A messenger genome: receivers and a worker, no echo or stem cells, a random port range of
 * its own (so tests never meet), a cheap scrypt, no front door unless asked for (it then
 * sits just past the range).
 */
export function messengerGenome(sets: readonly string[] = [], options: { frontDoor?: boolean } = {}) {
  const portMin = 20_000 + Math.floor(Math.random() * 40_000);
  const frontPort = portMin + 45;
  const genome = loadGenome({
    sets: [
      'limits.pulseIntervalMs=250', 'limits.suspectAfterPulses=3', 'limits.deadAfterPulses=6', 'limits.drainTimeoutMs=3000', 'limits.shutdownTimeoutMs=8000',
      'tissues.echo=null', 'tissues.dashboard=null', 'tissues.stem.min=0', 'tissues.receiver.min=1', 'tissues.worker.min=1',
      `messenger.portMin=${portMin}`, `messenger.portMax=${portMin + 40}`, 'messenger.scryptLogN=12', `messenger.frontPort=${options.frontDoor ? frontPort : 0}`,
      ...sets,
    ],
  });
  return { genome, frontPort };
}

/** The organism's receivers that are alive and have announced their URL. */
export function liveReceivers(o: Organism): CensusEntry[] {
  return o.observer.census.living().filter((c) => c.tissue === 'receiver' && c.state === 'alive' && c.url !== null);
}
