import WebSocket from 'ws';
import type { us_listen_socket } from 'uWebSockets.js';
import { loadNativeUws } from '../uws.js';
import type { Socket, SocketData, SocketHolder } from './registry.js';

/**
 * A real uWebSockets.js server for the tests of ws/: each client that connects is handed to the
 * test with the server's end of its socket, whose state is the fields of SocketData that the code
 * under test reads (`state()`).
 */
export async function socketServer(state: () => Partial<SocketData>) {
  const uWS = loadNativeUws();
  const waiting: ((socket: Socket) => void)[] = [];
  const app = uWS.App().ws<SocketHolder>('/*', {
    upgrade: (res, req, context) => {
      res.upgrade({ state: state() as SocketData }, req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'), req.getHeader('sec-websocket-extensions'), context);
    },
    open: (socket) => waiting.shift()?.(socket),
    close: (socket) => {
      socket.getUserData().state.closed = true;
    },
  });
  const listen = await new Promise<us_listen_socket>((resolve, reject) => app.listen('127.0.0.1', 0, (token) => (token ? resolve(token) : reject(new Error('no port')))));
  const port = uWS.us_socket_local_port(listen);
  return {
    /** Connects a client; resolves with both ends once the server has the socket, and the frames the client receives. */
    async connect() {
      const server = new Promise<Socket>((resolve) => waiting.push(resolve));
      const client = new WebSocket(`ws://127.0.0.1:${port}/`);
      const frames: string[] = [];
      client.on('message', (data) => frames.push(String(data)));
      const closed = new Promise<number>((resolve) => client.once('close', (code) => resolve(code)));
      await new Promise((resolve, reject) => {
        client.once('open', resolve);
        client.once('error', reject);
      });
      return { socket: await server, client, frames, closed };
    },
    close: () => uWS.us_listen_socket_close(listen),
  };
}
