/**
 * Zygotes (cells/zygote.ts, organism/grow/zygote-pool.ts): grow keeps cell processes
 * started and waiting; a division takes one instead of starting a process. Real grow, real
 * nats-server, real processes; pids are checked by their command lines.
 */
import test from 'ava';
import { chmodSync, existsSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { cellMarkers } from '../../cells/spawn.ts';
import { claimZygote, zygoteDir } from '../../cells/zygote.ts';
import { ZygotePool } from '../../organism/grow/zygote-pool.ts';
import { isProcessOf, localCells, signalCell, waitGone } from '../../organism/kernel/processes.ts';
import { grow, observe, until } from '../helpers/grow.ts';
import { startNats, tempDir, uniqueId } from '../helpers/nats.ts';

/** Pids of the zygotes waiting in `stateDir` (their sockets). */
function waiting(stateDir: string): number[] {
  const dir = zygoteDir(stateDir);
  return existsSync(dir) ? readdirSync(dir).flatMap((n) => (/^\d+\.sock$/.test(n) ? [Number(n.slice(0, -5))] : [])) : [];
}

test.serial('zygotes - a regrown cell is a waiting zygote, answers to its own markers, and the pool refills', async (t) => {
  const nats = await startNats(t);
  const id = uniqueId('zyg');
  // Two echo cells: the survivor of a kill divides (a cell, not grow, makes the replacement).
  const sets = ['limits.zygotes=2', 'tissues.stem.min=0', 'tissues.echo.min=2', 'tissues.echo.idleMs=600000'];
  const g = await grow(t, { args: ['--nats', nats.url, '--id', id], sets });
  const observer = await observe(t, g);
  const echo = () => observer.census.living().filter((c) => c.tissue === 'echo' && c.state === 'alive');
  await until(() => echo().length === 2 && waiting(g.stateDir).length === 2, 20_000, () => `two echo cells and two zygotes (now ${echo().length}, ${waiting(g.stateDir).length})`);
  const before = new Set(echo().map((c) => c.id));
  const zygotes = waiting(g.stateDir);
  // Only the organism's user may hand a zygote a packet (it names the module to run).
  t.is(statSync(zygoteDir(g.stateDir)).mode & 0o777, 0o700);
  // A zygote is no cell: nothing that looks for cells (sweeps, pid checks) takes it for one.
  t.deepEqual(localCells(id).filter((c) => zygotes.includes(c.pid)), []);
  const victim = echo()[0]!;
  process.kill(victim.pid, 'SIGKILL');
  await until(() => echo().some((c) => !before.has(c.id)), 15_000, 'echo regrown');
  const born = echo().find((c) => !before.has(c.id))!;
  t.not(born.parent, null, 'made by the surviving cell (a division)');
  t.true(zygotes.includes(born.pid), `the new cell (pid ${born.pid}) was a waiting zygote (${zygotes.join(', ')})`);
  t.true(isProcessOf(born.pid, cellMarkers(born.id)), 'its command line names the cell it became');
  t.deepEqual(localCells(id).filter((c) => c.pid === born.pid).map((c) => c.cell), [born.id]);
  t.regex(readlinkSync(join(g.stateDir, 'logs', `${born.id}.stderr.log`)), /^zygote-[0-9a-f]+\.stderr\.log$/, 'its stderr log is found under its name');
  // The pool refills, with new processes.
  await until(() => waiting(g.stateDir).length === 2 && !waiting(g.stateDir).includes(born.pid), 15_000, 'the pool back at two');
  // A zygote-born cell is a cell like any other: signalled by its markers, it drains and dies.
  t.true(signalCell(born.pid, born.id, id, 'SIGTERM'));
  await until(() => observer.census.get(born.id)?.state === 'dead', 10_000, 'the signalled cell dead');
});

test.serial('zygotes - an unclaimed zygote dies with its grow; a claimed one lives on as a cell', async (t) => {
  const nats = await startNats(t);
  const id = uniqueId('zyg');
  const sets = ['limits.zygotes=2', 'tissues.stem.min=0', 'tissues.echo.min=1', 'tissues.echo.idleMs=600000'];
  const g = await grow(t, { args: ['--nats', nats.url, '--id', id], sets });
  await until(() => waiting(g.stateDir).length === 2, 20_000, 'two zygotes');
  const zygotes = waiting(g.stateDir);
  const cells = localCells(id);
  t.teardown(() => {
    for (const c of cells) signalCell(c.pid, c.cell, id, 'SIGKILL');
  });
  g.child.kill('SIGKILL');
  await g.exited;
  for (const pid of zygotes) t.true(await waitGone(pid, 10_000), `zygote ${pid} exited when its grow's pipe closed`);
  t.true(cells.length > 0 && cells.every((c) => isProcessOf(c.pid, cellMarkers(c.cell))), 'the cells outlive their grow');
});

test('zygotes - the hand-over: a packet for another host is refused and the zygote waits on; a maker that gives up before "go" leaves no second process running the cell; a pool dir others may open gets no packet', async (t) => {
  const stateDir = tempDir(t);
  const said: string[] = [];
  const pool = new ZygotePool({ stateDir, organism: 'org-1', host: 'host-1', size: 1, modules: [], say: (l) => said.push(l), checkMs: 50 });
  t.teardown(() => pool.close());
  t.true(pool.start());
  await until(() => waiting(stateDir).length === 1, 15_000, 'a zygote');
  const [pid] = waiting(stateDir);
  const { defaultGenome } = await import('../../organism/kernel/genome/index.ts');
  const packet = (host: string) => ({
    v: 1 as const, organism: 'org-1', servers: ['nats://127.0.0.1:1'], token: null, jwt: null, tlsCa: null, genome: defaultGenome(), rootPub: '00'.repeat(32), stateDir, genomeDir: null,
    cell: { id: 'echo-00000000', tissue: 'echo', module: '/nonexistent.js', parent: null, host, born: Date.now(), seed: '00'.repeat(32), cert: '' },
  });
  t.is(await claimZygote(zygoteDir(stateDir), packet('host-2') as never), undefined);
  t.deepEqual(waiting(stateDir), [pid], 'refused, it waits for the next claim');
  // Others may open the directory: no packet goes in (it holds the cell's key).
  chmodSync(zygoteDir(stateDir), 0o755);
  t.is(await claimZygote(zygoteDir(stateDir), packet('host-1') as never), undefined);
  t.deepEqual(waiting(stateDir), [pid], 'nothing was sent to it');
  chmodSync(zygoteDir(stateDir), 0o700);
  // A maker that hears the pid but gives up before "go" (a timeout on a busy host) will hand
  // the packet on: the zygote that read it must not become that cell too. It ends.
  const socket = createConnection({ path: join(zygoteDir(stateDir), `${pid}.sock`) });
  socket.setEncoding('utf8');
  let reply = '';
  socket.on('data', (d: string) => (reply += d));
  socket.on('error', () => undefined);
  socket.write(`${JSON.stringify(packet('host-1'))}\n`);
  await until(() => reply.includes('\n'), 10_000, 'the zygote answers');
  t.deepEqual(JSON.parse(reply), { pid });
  socket.destroy();
  t.true(await waitGone(pid!, 10_000), 'the zygote left without "go" is gone');
  t.false(localCells('org-1', 'host-1').some((c) => c.pid === pid), 'it never became the cell');
  // The pool starts another.
  await until(() => waiting(stateDir).length === 1 && waiting(stateDir)[0] !== pid, 15_000, 'a new zygote');
  // A state dir too deep for a Unix socket path: no pool, and it says so.
  const deep = join(stateDir, 'd'.repeat(100));
  const none = new ZygotePool({ stateDir: deep, organism: 'org-1', host: 'host-1', size: 1, modules: [], say: (l) => said.push(l) });
  t.false(none.start());
  t.true(said.some((l) => /path is too long/.test(l)));
});

test('zygotes - with limits.zygotes 0 there is no pool and births start processes', async (t) => {
  const stateDir = tempDir(t);
  const pool = new ZygotePool({ stateDir, organism: 'org-1', host: 'host-1', size: 0, modules: [], say: () => {} });
  t.false(pool.start());
  t.false(existsSync(zygoteDir(stateDir)));
});
