/**
 * The operator (grow's side of the dashboard's controls) over real NATS with real cells:
 * each control does what it says, is recorded for the flight recorder, and nothing is done
 * without the dashboard token.
 */
import test, { type ExecutionContext } from 'ava';
import { connect } from '@nats-io/transport-node';
import { loadGenome } from '../../../organism/kernel/genome/index.ts';
import type { ControlRecord } from '../../../organism/wire/control.ts';
import { isCellularError } from '../../../organism/wire/errors.ts';
import { localCells } from '../../../organism/kernel/processes.ts';
import { openReply, pack, unpack } from '../../../organism/kernel/reply.ts';
import { FAST, until } from '../../helpers/grow.ts';
import { startOrganism } from '../../helpers/organism.ts';
import { signControl } from '../../../organism/kernel/dashboard-token.ts';

async function operated(t: ExecutionContext) {
  const { o, nats } = await startOrganism(t, loadGenome({ sets: [...FAST, 'tissues.stem.min=1', 'tissues.echo.min=1', 'tissues.echo.max=3'] }));
  await o.waitForPopulation();
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  const records: ControlRecord[] = [];
  nc.subscribe(o.observer.ns.recorder('control'), { callback: (_e, m) => void records.push(unpack(m.data) as ControlRecord) });
  const ask = async (control: object, token = o.dashboardToken) => openReply<{ message: string }>((await nc.request(o.observer.ns.operator, pack(signControl(token, o.id, 'test', control)), { timeout: 10_000 })).data).message;
  const echo = () => o.observer.census.living().filter((c) => c.tissue === 'echo' && c.state === 'alive');
  return { o, ask, records, echo };
}

test('operator - without the token nothing is done; with it a kill is done and recorded', async (t) => {
  const { ask, records, echo, o } = await operated(t);
  const victim = echo()[0]!;
  for (const token of ['', 'guess', `${o.dashboardToken}=`]) {
    const e = await t.throwsAsync(ask({ action: 'kill', cell: victim.id }, token));
    t.true(isCellularError(e, 'DASHBOARD_ERR_TOKEN'), e?.message);
  }
  t.true(echo().some((c) => c.id === victim.id), 'still alive');
  t.is(records.length, 0, 'a refused token leaves no record (it is not an operator)');
  t.regex(await ask({ action: 'kill', cell: victim.id }), new RegExp(`killed ${victim.id} \\(pid ${victim.pid}\\) with SIGKILL`));
  await until(() => !echo().some((c) => c.id === victim.id), 5_000, `${victim.id} dead in the census`);
  await until(() => records.length >= 1, 2_000, 'the record');
  t.like(records[0], { by: 'test', ok: true, control: { action: 'kill', cell: victim.id } });
  const e = await t.throwsAsync(ask({ action: 'kill', cell: 'echo-00000000' }));
  t.true(isCellularError(e, 'DASHBOARD_ERR_CONTROL'));
  t.regex(e?.message ?? '', /no living cell echo-00000000/);
  await until(() => records.length >= 2, 2_000, 'the refusal recorded');
  t.like(records[1], { ok: false });
});

test('operator - load reaches the tissue; an injected fault is voted out; chaos runs and says what it does', async (t) => {
  const { ask, records, echo, o } = await operated(t);
  const handled = () => echo().reduce((n, c) => n + c.work.handled, 0);
  const before = handled();
  t.regex(await ask({ action: 'load', tissue: 'echo', rate: 100, seconds: 3 }), /100 wait requests\/s on echo for 3 s/);
  const again = await t.throwsAsync(ask({ action: 'load', tissue: 'echo', rate: 100, seconds: 3 }));
  t.regex(again?.message ?? '', /already running on echo/);
  await until(() => handled() >= before + 100, 10_000, 'the load to be served');
  // What a tissue serves comes from its module, not from a living cell: the echo load may
  // just have recruited the only stem cell, and the answer is about the tissue all the same.
  const stem = await t.throwsAsync(ask({ action: 'load', tissue: 'stem', rate: 10, seconds: 1 }));
  t.regex(stem?.message ?? '', /stem serves no load endpoint/);
  // A flooder from the controls: the immune system convicts it as it would any other.
  const injected = await ask({ action: 'inject', tissue: 'echo', fault: 'flood' });
  const flooder = /spawned (\S+)/.exec(injected)![1]!;
  await until(() => o.observer.census.get(flooder)?.state === 'dead', 15_000, `${flooder} voted out`);
  t.is(o.observer.census.get(flooder)?.cause, 'toxin');
  // Chaos: an unknown scenario is refused by name; the monkey kills within its first step.
  const unknown = await t.throwsAsync(ask({ action: 'chaos', scenario: 'meteor', seed: 1 }));
  t.regex(unknown?.message ?? '', /no chaos scenario "meteor" runs on a live organism; scenarios: spike, ramp, monkey, massacre, stop-the-world, flood/);
  const storm = await t.throwsAsync(ask({ action: 'chaos', scenario: 'storm', seed: 1 }));
  t.regex(storm?.message ?? '', /the others: npm run chaos/, 'a scenario that needs chat clients is refused here');
  t.regex(await ask({ action: 'chaos', scenario: 'monkey', seed: 7 }), /chaos monkey started/);
  const busy = await t.throwsAsync(ask({ action: 'chaos', scenario: 'massacre', seed: 1 }));
  t.regex(busy?.message ?? '', /chaos monkey is still running/);
  await until(() => records.some((r) => r.by === 'chaos monkey' && /^kill -9 /.test(r.message)), 6_000, 'the monkey to kill a cell');
  t.false(records.some((r) => r.by === 'chaos monkey' && /dashboard/.test(r.message)), 'never the dashboard');
});

test('operator - shutdown from the dashboard stops the organism', async (t) => {
  const { ask, o } = await operated(t);
  t.regex(await ask({ action: 'shutdown' }), /shutting down/);
  await until(() => o.state.state === 'stopped', 20_000, 'the organism to stop');
  t.deepEqual(localCells(o.id), [], 'no cell of it is left');
});

test('operator - attacker: the token never crosses the broker; a captured control cannot be replayed, altered or sent late', async (t) => {
  const { o, records, echo } = await operated(t);
  const nc = o.observer.nc;
  const seen: Uint8Array[] = [];
  const tap = nc.subscribe(o.observer.ns.operator, { callback: (_e, m) => void seen.push(m.data) });
  t.teardown(() => tap.unsubscribe());
  await nc.flush();
  const victim = echo()[0]!;
  const signed = signControl(o.dashboardToken, o.id, 'test', { action: 'kill', cell: victim.id });
  const send = async (body: unknown) => {
    try {
      return openReply<{ message: string }>((await nc.request(o.observer.ns.operator, pack(body), { timeout: 10_000 })).data).message;
    } catch (e) {
      return String((e as { code?: string }).code ?? e);
    }
  };
  t.regex(await send(signed), /killed/);
  // What crossed the broker holds no trace of the token (raw, hex or base64).
  const token = o.dashboardToken;
  const wire = Buffer.concat(seen.map((b) => Buffer.from(b)));
  for (const form of [token, Buffer.from(token).toString('hex'), Buffer.from(token).toString('base64')]) t.false(wire.includes(Buffer.from(form)), 'the token is not on the wire');
  t.true(seen.length >= 1, 'the tap saw the control');
  // The same bytes again, the control altered under the old MAC, and one signed long ago.
  t.is(await send(signed), 'DASHBOARD_ERR_TOKEN');
  const other = echo().find((c) => c.id !== victim.id) ?? victim;
  t.is(await send({ ...signed, nonce: new Uint8Array(16).fill(7), control: pack({ action: 'kill', cell: other.id }) }), 'DASHBOARD_ERR_TOKEN');
  t.is(await send(signControl(o.dashboardToken, o.id, 'test', { action: 'kill', cell: other.id }, Date.now() - 120_000)), 'DASHBOARD_ERR_TOKEN');
  // Signed for another organism with the same token: refused here.
  t.is(await send(signControl(o.dashboardToken, 'another-organism', 'test', { action: 'kill', cell: other.id })), 'DASHBOARD_ERR_TOKEN');
  t.is(records.filter((r) => r.ok).length, 1, 'exactly one control was carried out');
});
