// Memory of a Node process after a full garbage collection, through the inspector protocol
// (the process runs with --inspect=127.0.0.1:<port>). The idle phase measures what a connection
// costs as the difference of two such readings: RSS read without a collection is mostly the
// garbage the process happened to hold at that moment (eight runs gave 0.65 to 8.05 KiB per
// connection for the same code, docs/performance.md).
import WebSocket from 'ws';

/** The node argument that opens the inspector on `port` (loopback only). */
export const inspectArg = (port) => `--inspect=127.0.0.1:${port}`;

/**
 * Collects garbage twice (weak references and finalizers free more on the second) and returns
 * `process.memoryUsage()` of the process whose inspector listens on `port`.
 */
export async function memoryAfterGc(port) {
  const [target] = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
  const ws = new WebSocket(target.webSocketDebuggerUrl, { perMessageDeflate: false });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const replies = new Map();
  let nextId = 1;
  ws.on('message', (data) => {
    const reply = JSON.parse(data.toString());
    replies.get(reply.id)?.(reply);
  });
  const call = (method, params = {}) =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      replies.set(id, (reply) => (reply.error ? reject(new Error(`${method}: ${reply.error.message}`)) : resolve(reply.result)));
      ws.send(JSON.stringify({ id, method, params }));
    });
  try {
    await call('HeapProfiler.collectGarbage');
    await call('HeapProfiler.collectGarbage');
    const { result } = await call('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true });
    return JSON.parse(result.value);
  } finally {
    ws.close();
  }
}
