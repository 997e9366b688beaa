// The ceiling: the same sockets and frames as Parley's gateway, through a bare uWebSockets.js
// fan-out with no NATS, no Postgres, no auth and no validation. One topic per chat; a `send` gets
// the chat's next seq, an ack, and a `message.created` event published to the chat's topic (the
// sender's own socket included, as with Parley). Parley's figures read as a fraction of this.
//
// Started by bench/run.mjs with fork(): CEILING_PORTS (comma-separated, one process listening on
// all of them) and CEILING_MEMBERS (a JSON file: userId -> chatIds).
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import uWS from 'uWebSockets.js';

const members = JSON.parse(readFileSync(process.env.CEILING_MEMBERS, 'utf8'));
const ports = process.env.CEILING_PORTS.split(',').map(Number);
const seqs = new Map();
const decoder = new TextDecoder();

const app = uWS.App().ws('/ws', {
  maxPayloadLength: 1024 * 1024,
  idleTimeout: 120,
  maxBackpressure: 2 * 1024 * 1024,
  sendPingsAutomatically: true,
  upgrade: (res, req, context) => {
    const userId = new URLSearchParams(req.getQuery() ?? '').get('u') ?? '';
    res.upgrade({ userId }, req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'), req.getHeader('sec-websocket-extensions'), context);
  },
  open: (ws) => {
    for (const chatId of members[ws.getUserData().userId] ?? []) ws.subscribe(chatId);
  },
  message: (ws, message) => {
    let f;
    try {
      f = JSON.parse(decoder.decode(message));
    } catch {
      ws.send('{"op":"error","code":"invalid_json","message":"Frame is not valid JSON"}');
      return;
    }
    if (f.op === 'send') {
      const seq = (seqs.get(f.chatId) ?? 0) + 1;
      seqs.set(f.chatId, seq);
      const id = randomUUID();
      const at = new Date().toISOString();
      ws.send(JSON.stringify({ op: 'ack', clientMsgId: f.clientMsgId, messageId: id, seq }));
      const data = { id, chatId: f.chatId, senderId: ws.getUserData().userId, body: f.body, replyTo: null, attachments: [], reactions: [], poll: null, editedAt: null, deletedAt: null, createdAt: at, seq };
      app.publish(f.chatId, JSON.stringify({ op: 'event', type: 'message.created', chatId: f.chatId, seq, data, at }));
    } else if (f.op === 'ping') {
      ws.send('{"op":"pong"}');
    } else if (f.op === 'typing') {
      app.publish(f.chatId, JSON.stringify({ op: 'typing', chatId: f.chatId, userId: ws.getUserData().userId }));
    }
    // `read` and `resume` are accepted and ignored: the ceiling measures fan-out, not receipts.
  },
});

let listening = 0;
for (const port of ports) {
  app.listen('0.0.0.0', port, (token) => {
    if (!token) {
      process.send?.({ type: 'error', message: `ceiling cannot listen on ${port}` });
      process.exit(1);
    }
    if (++listening === ports.length) process.send?.({ type: 'ready' });
  });
}
process.on('SIGTERM', () => process.exit(0));
process.on('disconnect', () => process.exit(0));
