/**
 * Peer of the chat benchmark: a single-process, in-memory WebSocket relay. It speaks the
 * frames the bench's lean client sends (docs/protocol.md, msgpack maps): `login` binds the
 * socket to a user, `send` is pushed at once to the recipient's socket as `deliver` and
 * answered `ack`, `deliver.ack` is answered `ok`. It stores nothing and checks nothing: the
 * floor of any relay that runs in Node on this machine.
 *
 * Started by the bench with an IPC channel (`fork`); says `{ ready, port, pid }` once
 * listening and exits when the parent disconnects or on SIGTERM.
 */
import { WebSocketServer, type WebSocket } from 'ws';
import { codec } from '../../organism/wire/codec.ts';

interface Frame {
  t: string;
  id?: number;
  user?: string;
  to?: string;
  msg?: string;
  body?: Uint8Array;
}

const users = new Map<string, WebSocket>();
let seq = 0;
const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, path: '/ws' });

wss.on('connection', (ws) => {
  let user: string | null = null;
  ws.on('message', (data: Buffer) => {
    let f: Frame;
    try {
      f = codec.unpack(data) as Frame;
    } catch {
      return;
    }
    switch (f.t) {
      case 'login':
        user = String(f.user);
        users.set(user, ws);
        ws.send(codec.pack({ v: 1, t: 'session', id: f.id, user, token: 'relay', expires: 0 }));
        return;
      case 'send': {
        const s = ++seq;
        const to = users.get(String(f.to));
        to?.send(codec.pack({ v: 1, t: 'deliver', seq: s, msg: f.msg, from: user, to: f.to, at: Date.now(), body: f.body }));
        ws.send(codec.pack({ v: 1, t: 'ack', id: f.id, msg: f.msg, seq: s }));
        return;
      }
      case 'deliver.ack':
        ws.send(codec.pack({ v: 1, t: 'ok', id: f.id }));
        return;
      default:
        ws.send(codec.pack({ v: 1, t: 'pong', id: f.id }));
    }
  });
  ws.on('close', () => {
    if (user !== null && users.get(user) === ws) users.delete(user);
  });
});

wss.on('listening', () => {
  const address = wss.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  process.send?.({ ready: true, port, pid: process.pid });
});

const quit = () => {
  for (const ws of wss.clients) ws.terminate();
  wss.close();
  process.exit(0);
};
process.on('disconnect', quit);
process.on('SIGTERM', quit);
