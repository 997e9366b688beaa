import { createServer, type AddressInfo } from 'node:net';

/**
 * A TCP port free on loopback now (taken from the OS, then let go): for a server a test starts as
 * its own process, or as a port nothing listens on.
 */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
