import test from 'ava';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { cellMarkersOf, isAlive, localCells, waitGone } from '../../../organism/kernel/processes.ts';

const until = async (ok: () => boolean, ms: number): Promise<boolean> => {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
};

test('processes - a fork that has not exec\'d yet is its parent, not a second cell', async (t) => {
  // A shell's subshell is a fork that never execs: the same command line, markers included,
  // as a cell's child has until its exec (pidusage's getconf once made a count see 3 cells for 2).
  const organism = `o${process.pid}${Date.now().toString(36)}`;
  const sh = spawn('sh', ['-c', '( while :; do sleep 1; done ) & wait', 'sh', '--cell', 'c1', '--organism', organism], { stdio: 'ignore', detached: true });
  // Its own process group: the subshell and its sleeps go with it.
  const killAll = () => {
    try {
      process.kill(-sh.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  t.teardown(killAll);
  t.true(await until(() => (sh.pid ?? 0) > 0 && isAlive(sh.pid!), 5_000), 'the shell runs');
  // Both the shell and its subshell carry the markers.
  t.deepEqual(cellMarkersOf(`sh -c x sh --cell c1 --organism ${organism}`), { cell: 'c1', organism, host: null });
  const carriers = () => readdirSync('/proc').filter((d) => /^\d+$/.test(d)).filter((d) => {
    try {
      return readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(organism);
    } catch {
      return false;
    }
  });
  t.true(await until(() => carriers().length === 2, 5_000), 'the shell and its subshell both carry the markers');
  const cells = localCells(organism);
  t.deepEqual(cells, [{ pid: sh.pid!, cell: 'c1' }], 'one cell: the parent');
  killAll();
  t.true(await waitGone(sh.pid!, 5_000));
  t.true(await until(() => carriers().length === 0, 5_000), 'nothing of it left');
});
