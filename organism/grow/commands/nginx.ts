/** `cellular nginx`: the front door's config from the census (organism/grow/nginx-door.ts). */
import { nginxCommand, nginxRenderOptions } from '../nginx-door.ts';
import { Observer } from '../observer.ts';
import { commandUser, gatherCensus, target } from './target.ts';
import { say, type Flags } from './usage.ts';

export async function nginx(flags: Flags): Promise<number> {
  const nf = { listen: flags.listen, out: flags.out, watch: flags.watch, run: flags.run, serverName: flags['server-name'], tlsCert: flags['tls-cert'], tlsKey: flags['tls-key'], nginxPid: flags['nginx-pid'], publicUrl: flags['public-url'] };
  nginxRenderOptions(nf); // bad flags fail before the organism is reached
  const t = target(flags);
  const user = t.operator ? await commandUser(t.stateDir, t.id, 'observer', 'nginx') : undefined;
  const observer = await Observer.open({ servers: t.servers, token: t.token, ...(user ? { user } : {}), ...(t.tls ? { tls: t.tls } : {}), organism: t.id, rootPub: t.rootPub, limits: t.genome.limits, jury: t.genome.immune?.jury ?? 9, voteDeadlineMs: t.genome.immune?.voteDeadlineMs ?? 3_000, name: 'cellular nginx' });
  try {
    return await nginxCommand({
      flags: nf,
      stateDir: t.stateDir, census: observer.census, say, gather: () => gatherCensus(observer, t.genome.limits),
      receiverTissues: new Set(Object.entries(t.genome.tissues).filter(([, x]) => x.module === 'receiver').map(([name]) => name)),
    });
  } finally {
    await observer.close();
  }
}

