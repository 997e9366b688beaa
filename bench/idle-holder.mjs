// Holds idle WebSocket connections for the idle phase. A separate process (forked by
// bench/run.mjs), not a worker thread, because open files are limited per process
// (`ulimit -n`, often 20,000 or less) and the idle phase may want more sockets than that.
import WebSocket from 'ws';

const sockets = [];
/** Close codes of sockets the server closed after they had opened. */
const closes = {};

async function open({ targets, concurrency, rate }) {
  let next = 0;
  let failed = 0;
  const errors = {};
  // Optional pacing (connections per second from this holder): a fleet of clients reconnecting
  // after a deploy arrives spread out, not all in the same millisecond.
  const started = performance.now();
  const runner = async () => {
    while (next < targets.length) {
      const slot = next;
      const { url, localAddress } = targets[next++];
      if (rate > 0) {
        const wait = started + (slot * 1000) / rate - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
      try {
        await new Promise((resolve, reject) => {
          const ws = new WebSocket(url, { perMessageDeflate: false, localAddress, handshakeTimeout: 20_000 });
          ws.on('open', () => {
            sockets.push(ws);
            ws.on('close', (code) => {
              closes[code] = (closes[code] ?? 0) + 1;
            });
            resolve();
          });
          ws.on('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
          ws.on('error', reject);
          // Frames (presence notices) are read and dropped; an idle client still reads.
          ws.on('message', () => {});
        });
      } catch (error) {
        failed += 1;
        const key = String(error.code ?? error.message).slice(0, 80);
        errors[key] = (errors[key] ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, runner));
  const open = sockets.filter((ws) => ws.readyState === WebSocket.OPEN).length;
  return { opened: open, failed, errors, closes: { ...closes } };
}

process.on('message', async (message) => {
  if (message.cmd === 'open') {
    process.send({ type: 'opened', ...(await open(message)) });
  } else if (message.cmd === 'count') {
    process.send({ type: 'count', open: sockets.filter((ws) => ws.readyState === WebSocket.OPEN).length, closes });
  } else if (message.cmd === 'close') {
    for (const ws of sockets) ws.terminate();
    process.exit(0);
  }
});
process.on('disconnect', () => process.exit(0));
process.send({ type: 'ready' });
