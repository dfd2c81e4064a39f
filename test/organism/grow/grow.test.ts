import test from 'ava';
import { hostName } from '../../../organism/kernel/host.ts';
import { connect as tcpConnect } from 'node:net';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { CLI, FAST, cellsOf, censusJson, cli, cliAsync, grow, until, waitGone } from '../../helpers/grow.ts';
import { ensureNatsServer, freePort } from '../../../organism/grow/broker.ts';
import { startNats, tempDir, uniqueId } from '../../helpers/nats.ts';
import { commandLineOf, isAlive, localCells, signalCell, signalIfOurs } from '../../../organism/kernel/processes.ts';
import { isRunning, readRecord } from '../../../organism/grow/record.ts';

function portOpen(url: string): Promise<boolean> {
  const { hostname: host, port } = new URL(url.replace('nats://', 'http://'));
  return new Promise((resolve) => {
    const s = tcpConnect({ host, port: Number(port) });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Pids of nats-server processes whose parent is `ppid`. */
function natsChildren(ppid: number): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .filter((pid) => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        return Number(fields[1]) === ppid && (commandLineOf(pid) ?? '').includes('nats-server');
      } catch {
        return false;
      }
    });
}

// Serial: each test grows real organisms; several at once on two cores starve their cells into
// missed pulses, false deaths and regrowth, and the census counts then measure the machine.
test.serial('grow - reaches the genome census, census --json is accurate, Ctrl-C leaves no process or port', async (t) => {
  const g = await grow(t, { sets: ['tissues.stem.min=2', 'tissues.echo.min=1'] });
  t.truthy(g.record.broker, 'grow started its own broker');
  const broker = g.record.broker!;
  t.not(new URL(g.record.servers[0]!.replace('nats://', 'http://')).port, '4222');
  t.true(g.record.servers[0]!.startsWith('nats://127.0.0.1:'));
  t.true(await portOpen(g.record.servers[0]!));

  const entries = await censusJson(g);
  const alive = entries.filter((e) => e.state === 'alive');
  // When the count is off, grow's own log says which decision made the extra cell.
  if (alive.length !== 3) t.log(`census: ${alive.map((e) => `${e.id} born ${e.born}`).join(', ')}\n${g.stdout().split('\n').filter((l) => l.includes('decision') || l.includes('joined')).join('\n')}`);
  t.is(alive.filter((e) => e.tissue === 'stem').length, 2);
  t.is(alive.filter((e) => e.tissue === 'echo').length, 1);
  t.is(alive.length, 3);
  for (const e of alive) {
    // Accurate: every row is a live process of that cell, on this host, made by the root.
    t.true((commandLineOf(e.pid) ?? '').includes(`--cell ${e.id}`), `pid ${e.pid} is cell ${e.id}`);
    t.is(e.host, hostName());
    t.is(e.parent, null);
    t.true(e.rss > 10 * 1024 * 1024, 'rss measured');
    t.true(e.load >= 0 && e.load <= 1);
    t.true(e.age >= 0 && e.age < 60_000);
  }
  t.deepEqual(cellsOf(g.record.id).sort(), alive.map((e) => e.pid).sort(), 'no cell process outside the census');
  // The table form lists the same cells.
  const table = cli(['census', '--state-dir', g.stateDir]);
  t.is(table.status, 0);
  for (const e of alive) t.true(table.stdout.includes(e.id));

  g.child.kill('SIGINT');
  t.is(await g.exited, 0);
  t.regex(g.stderr(), /nats-server stopped/);
  for (const e of alive) t.false(isAlive(e.pid), `cell ${e.id} gone`);
  t.true(await waitGone(broker.pid, 1_000), 'broker gone');
  t.false(await portOpen(g.record.servers[0]!), 'client port closed');
  t.false(await portOpen(broker.monitorUrl.replace('http://', 'nats://')), 'monitor port closed');
  t.deepEqual(cellsOf(g.record.id), []);
  // Every cell said why it died.
  t.regex(g.stdout(), /alive -> dead \(shutdown\)/);
  // One host on loopback: the broker speaks plain TCP, and grow says so.
  t.regex(g.stderr(), /plain TCP on 127\.0\.0\.1/);
});

test.serial('cli - stop from another terminal ends grow and leaves nothing', async (t) => {
  const g = await grow(t, { sets: ['tissues.stem.min=1', 'tissues.echo.min=1'] });
  const pids = (await censusJson(g)).map((e) => e.pid);
  t.is(pids.length, 2);
  // A second grow on the same state dir is refused and leaves the first untouched: record,
  // id and genome alike (it must not even write them).
  const idBefore = readFileSync(join(g.stateDir, 'id'), 'utf8');
  const second = cli(['grow', '--plain', '--state-dir', g.stateDir, '--id', 'other', '--set', 'limits.pulseIntervalMs=1000']);
  t.is(second.status, 1);
  t.regex(second.stderr, /STATE_ERR_LOCKED/);
  t.deepEqual(readRecord(g.stateDir), g.record);
  t.is(readFileSync(join(g.stateDir, 'id'), 'utf8'), idBefore);
  t.deepEqual((await censusJson(g)).map((e) => e.pid).sort(), [...pids].sort());
  const r = cli(['stop', '--state-dir', g.stateDir]);
  t.is(r.status, 0, r.stderr);
  t.is(await g.exited, 0);
  for (const pid of pids) t.false(isAlive(pid));
  t.false(isAlive(g.record.broker!.pid));
  t.deepEqual(cellsOf(g.record.id), []);
  // No organism left to stop: a clear error, not a hang.
  const again = cli(['census', '--state-dir', g.stateDir]);
  t.is(again.status, 1);
  t.regex(again.stderr, /STATE_ERR_NO_ORGANISM/);
});

test.serial('grow - two organisms on one NATS stay apart, and --nats starts no broker', async (t) => {
  const nats = await startNats(t);
  const a = await grow(t, { args: ['--nats', nats.url, '--id', uniqueId('a')], sets: ['tissues.stem.min=1', 'tissues.echo.min=0'] });
  const b = await grow(t, { args: ['--nats', nats.url, '--id', uniqueId('b')], sets: ['tissues.stem.min=2', 'tissues.echo.min=1'] });
  t.is(a.record.broker, null);
  t.is(b.record.broker, null);
  t.deepEqual(natsChildren(a.child.pid!), []);
  t.deepEqual(natsChildren(b.child.pid!), []);
  t.regex(a.stderr(), /no broker started/);
  const ca = (await censusJson(a)).filter((e) => e.state === 'alive');
  const cb = (await censusJson(b)).filter((e) => e.state === 'alive');
  t.is(ca.length, 1);
  t.is(cb.length, 3);
  const idsA = new Set(ca.map((e) => e.id));
  t.false(cb.some((e) => idsA.has(e.id)), 'b sees none of a');
  // Stopping a leaves b untouched.
  a.child.kill('SIGINT');
  t.is(await a.exited, 0);
  const cb2 = (await censusJson(b)).filter((e) => e.state === 'alive');
  t.deepEqual(cb2.map((e) => e.id).sort(), cb.map((e) => e.id).sort());
  t.true(await (async () => isAlive(nats.pid!))(), 'the shared NATS is not stopped by a joined organism');
});

test.serial('cli - a missing nats-server gives the install message', (t) => {
  const r = cli(['grow', '--state-dir', join(tempDir(t), 'state')], { NATS_SERVER_BIN: '/nonexistent/nats-server' });
  t.is(r.status, 1);
  t.regex(r.stderr, /BROKER_ERR_NOT_FOUND/);
  t.regex(r.stderr, /apt-get install -y nats-server/);
  t.regex(r.stderr, /brew install nats-server/);
});

test.serial('cli - bad flags and bad genome values are refused with a clear message', (t) => {
  const bad = cli(['grow', '--bogus']);
  t.is(bad.status, 1);
  t.regex(bad.stderr, /CLI_ERR_USAGE/);
  const genome = cli(['grow', '--state-dir', join(tempDir(t), 'state'), '--set', 'tissues.echo.min=9', '--set', 'tissues.echo.max=2']);
  t.is(genome.status, 1);
  t.regex(genome.stderr, /GENOME_ERR_INVALID: genome\.tissues\.echo\.min must be at most tissues\.echo\.max \(2\), received number 9/);
  const help = cli(['help']);
  t.is(help.status, 0);
  t.regex(help.stdout, /--state-dir/);
});

test.serial('grow - a reader that goes away (grow | head) does not stop grow from cleaning up', async (t) => {
  // `npm run grow | tee log` then Ctrl-C kills tee too: grow's next write hits a closed pipe.
  // Here `head -c 1` closes the pipe after the first byte, then grow gets SIGINT.
  const stateDir = join(tempDir(t), 'state');
  const sets = FAST.flatMap((s) => ['--set', s]);
  const shell = spawn('sh', ['-c', `"${process.execPath}" "${CLI}" grow --plain --state-dir "${stateDir}" ${sets.join(' ')} --set tissues.stem.min=1 --set tissues.stem.max=1 --set tissues.echo.max=1 | head -c 1 >/dev/null`], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  shell.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const shellDone = new Promise((r) => shell.once('close', r));
  t.teardown(() => {
    const r = readRecord(stateDir);
    if (r) {
      if (isRunning(r.grow)) process.kill(r.grow.pid, 'SIGKILL');
      if (r.broker) signalIfOurs(r.broker.pid, [`-c ${r.broker.config}`], 'SIGKILL');
      for (const c of localCells(r.id)) signalCell(c.pid, c.cell, r.id, 'SIGKILL');
    }
  });
  await until(() => /alive: \d+ cells/.test(err), 30_000, `grow alive (${err})`);
  const record = readRecord(stateDir)!;
  const cells = cellsOf(record.id);
  t.is(cells.length, 2);
  process.kill(record.grow.pid, 'SIGINT');
  await shellDone;
  t.true(await waitGone(record.grow.pid, 15_000), 'grow exited');
  t.notRegex(err, /EPIPE/);
  t.regex(err, /nats-server stopped/);
  for (const pid of cells) t.false(isAlive(pid));
  t.true(await waitGone(record.broker!.pid, 2_000), 'broker stopped');
  t.is(readRecord(stateDir), undefined, 'record removed: grow finished its stop');
});

test.serial('cli - stop finishes the job when grow itself was killed', async (t) => {
  // max = min: homeostasis may not divide a cell on a loaded host, so the count is the genome's.
  const g = await grow(t, { sets: ['tissues.stem.min=1', 'tissues.stem.max=1', 'tissues.echo.min=1', 'tissues.echo.max=1'] });
  const pids = cellsOf(g.record.id);
  t.is(pids.length, 2, "the genome's two cells (a fork on its way to exec is not counted: processes.ts)");
  g.child.kill('SIGKILL');
  await g.exited;
  t.true(isAlive(g.record.broker!.pid), 'the broker outlived grow');
  const r = cli(['stop', '--state-dir', g.stateDir]);
  t.is(r.status, 0, r.stderr);
  for (const pid of pids) t.false(isAlive(pid), `cell ${pid} stopped`);
  t.deepEqual(cellsOf(g.record.id), [], 'no cell of the organism left, one made after the count included');
  t.true(await waitGone(g.record.broker!.pid, 2_000), 'broker stopped');
  t.is(readRecord(g.stateDir), undefined);
  t.false(existsSync(join(g.stateDir, 'grow.lock')), 'lock released');
});

test.serial('grow - a new grow takes over from a killed one, ending what it left running', async (t) => {
  const first = await grow(t, { sets: ['tissues.stem.min=1', 'tissues.stem.max=1', 'tissues.echo.min=0'] });
  const orphans = cellsOf(first.record.id);
  t.is(orphans.length, 1);
  first.child.kill('SIGKILL');
  await first.exited;
  const second = await grow(t, { stateDir: first.stateDir, sets: ['tissues.stem.min=1', 'tissues.echo.min=1'] });
  t.regex(second.stderr(), /previous owner \(pid \d+\) died and left 1 cells and its nats-server/);
  for (const pid of orphans) t.false(isAlive(pid), 'the orphan was stopped');
  t.false(isAlive(first.record.broker!.pid), 'the orphaned broker was stopped');
  t.is(second.record.id, first.record.id, 'same state dir, same organism id');
  t.is((await censusJson(second)).filter((e) => e.state === 'alive').length, 2);
});

test.serial('cli - joining a NATS without JetStream fails with STORE_ERR_SETUP and leaves nothing', async (t) => {
  const port = await freePort('127.0.0.1');
  const server = spawn(ensureNatsServer({ autoInstall: false }), ['-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
  t.teardown(() => void server.kill('SIGKILL'));
  for (let i = 0; i < 100 && !(await portOpen(`nats://127.0.0.1:${port}`)); i++) await new Promise((r) => setTimeout(r, 20));
  const id = uniqueId('nojs');
  const r = await cliAsync(['grow', '--plain', '--state-dir', join(tempDir(t), 'state'), '--nats', `nats://127.0.0.1:${port}`, '--id', id]);
  t.is(r.status, 1);
  t.regex(r.stderr, /STORE_ERR_SETUP: .*JetStream/);
  t.deepEqual(cellsOf(id), []);
});
