/**
 * Peer of the chat benchmark: one Socket.IO 4 server process with @socket.io/redis-adapter.
 * Two of them, on two ports, share one Redis: a message emitted to a user's room reaches
 * that user's socket on either process (through Redis pub/sub when it is on the other).
 * `login` joins the socket to the user's room; `send (to, body)` emits `deliver (from, body)`
 * to the room `to` and acknowledges at once. Nothing is stored.
 *
 * Started by the bench with an IPC channel (`fork`) and `BENCH_REDIS_URL` in its
 * environment; says `{ ready, port, pid }` once listening, exits when the parent
 * disconnects or on SIGTERM.
 */
import { createServer } from 'node:http';
import { createAdapter } from '@socket.io/redis-adapter';
import { createClient } from 'redis';
import { Server } from 'socket.io';

const url = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const pub = createClient({ url });
const sub = pub.duplicate();
pub.on('error', (e: Error) => process.stderr.write(`redis: ${e.message}\n`));
sub.on('error', (e: Error) => process.stderr.write(`redis: ${e.message}\n`));
await Promise.all([pub.connect(), sub.connect()]);

const http = createServer();
const io = new Server(http, { adapter: createAdapter(pub, sub), transports: ['websocket'], serveClient: false, perMessageDeflate: false });

io.on('connection', (socket) => {
  socket.on('login', (user: string, ack?: () => void) => {
    socket.data.user = user;
    void socket.join(user);
    ack?.();
  });
  socket.on('send', (to: string, body: Buffer, ack?: () => void) => {
    io.to(to).emit('deliver', socket.data.user as string, body);
    ack?.();
  });
});

http.listen(0, '127.0.0.1', () => {
  const address = http.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  process.send?.({ ready: true, port, pid: process.pid });
});

let quitting = false;
const quit = () => {
  if (quitting) return;
  quitting = true;
  io.close();
  void Promise.allSettled([pub.quit(), sub.quit()]).finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 1_000).unref();
};
process.on('disconnect', quit);
process.on('SIGTERM', quit);
