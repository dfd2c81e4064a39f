/**
 * Test helper: a TCP link on loopback to a real server, which the test can cut and heal.
 * Cut, it drops every connection through it and refuses new ones (a client reconnecting
 * meanwhile fails, as behind a partition); healed, it forwards again. Closed in teardown.
 */
import { createServer, connect, type Socket } from 'node:net';
import type { ExecutionContext } from 'ava';

export interface Link {
  /** `nats://127.0.0.1:<port>` of the link's own end. */
  url: string;
  cut(): void;
  heal(): void;
  /** Connections accepted and forwarded so far. */
  readonly accepted: number;
}

export async function startLink(t: ExecutionContext, target: { host: string; port: number }): Promise<Link> {
  const open = new Set<Socket>();
  let cut = false;
  let accepted = 0;
  const server = createServer((client) => {
    if (cut) return void client.destroy();
    accepted++;
    const upstream = connect(target.port, target.host);
    for (const [a, b] of [[client, upstream], [upstream, client]] as const) {
      open.add(a);
      a.on('error', () => b.destroy());
      a.on('close', () => {
        open.delete(a);
        b.destroy();
      });
      a.pipe(b);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  );
  const { port } = server.address() as { port: number };
  return {
    url: `nats://127.0.0.1:${port}`,
    cut() {
      cut = true;
      for (const s of open) s.destroy();
    },
    heal() {
      cut = false;
    },
    get accepted() {
      return accepted;
    },
  };
}
