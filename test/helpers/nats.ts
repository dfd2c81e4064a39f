/**
 * Test helper: a real nats-server (JetStream on) on free loopback ports, in a temp dir,
 * stopped by pid in t.teardown. Each test file starts its own, so files never share state.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { Broker, ensureNatsServer } from '../../organism/grow/broker.ts';
import { defaultGenome } from '../../organism/kernel/genome/index.ts';
import { signalIfOurs } from '../../organism/kernel/processes.ts';
import { reapOnExit } from './reaper.ts';

export function tempDir(t: ExecutionContext, prefix = 'cellular-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * Starts a nats-server for one test; it is stopped in teardown. By default a plain one,
 * without a token, standing for "an existing NATS" that organisms join with --nats; `dir`
 * and `binary` place its store and config, or start it through a wrapper.
 */
export async function startNats(t: ExecutionContext, options: { auth?: boolean; dir?: string; binary?: string } = {}): Promise<Broker> {
  const dir = options.dir ?? tempDir(t, 'cellular-nats-');
  const binary = options.binary ?? ensureNatsServer({ autoInstall: false });
  const broker = new Broker({ gene: defaultGenome().broker, dir, name: `test-${process.pid}`, binary, auth: options.auth ?? false });
  const unreap = reapOnExit(() => {
    if (broker.pid !== undefined) signalIfOurs(broker.pid, [`-c ${broker.configPath}`], 'SIGKILL');
  });
  t.teardown(async () => {
    await broker.close();
    unreap();
  });
  await broker.start();
  return broker;
}

/** A fresh organism id per test, so subjects never collide. */
export function uniqueId(prefix = 't'): string {
  return `${prefix}${process.pid.toString(36)}${Math.random().toString(36).slice(2, 8)}`;
}
