import { existsSync } from 'node:fs';

/**
 * Vitest global setup. Tests run against the servers in the environment (DATABASE_URL, NATS_URL,
 * REDIS_URL, or the standard local ports). Only when none is given and a Docker engine is
 * reachable does it start PostgreSQL 15, Redis 7 and NATS 2.9 with testcontainers; the URLs reach
 * the test workers through PARLEY_TEST_URLS (workers inherit the environment).
 */
export default async function setup(): Promise<(() => Promise<void>) | void> {
  const given = ['DATABASE_URL', 'NATS_URL', 'REDIS_URL'].some((k) => process.env[k]);
  const dockerReachable = Boolean(process.env.DOCKER_HOST) || existsSync('/var/run/docker.sock');
  if (given || !dockerReachable || process.env.PARLEY_TEST_NO_CONTAINERS) return;
  if (await localServersUp()) return;
  const { GenericContainer, Wait } = await import('testcontainers');
  const [postgres, redis, nats] = await Promise.all([
    new GenericContainer('postgres:15')
      .withEnvironment({ POSTGRES_HOST_AUTH_METHOD: 'trust' })
      .withExposedPorts(5432)
      .withWaitStrategy(Wait.forLogMessage(/database system is ready to accept connections/, 2))
      .start(),
    new GenericContainer('redis:7').withExposedPorts(6379).start(),
    new GenericContainer('nats:2.9').withCommand(['-js']).withExposedPorts(4222).start(),
  ]);
  process.env.PARLEY_TEST_URLS = JSON.stringify({
    databaseUrl: `postgres://postgres@${postgres.getHost()}:${postgres.getMappedPort(5432)}/postgres`,
    redisUrl: `redis://${redis.getHost()}:${redis.getMappedPort(6379)}`,
    natsUrl: `nats://${nats.getHost()}:${nats.getMappedPort(4222)}`,
  });
  return async () => {
    await Promise.all([postgres.stop(), redis.stop(), nats.stop()]);
  };
}

/** The standard local ports answer: use them rather than start containers. */
async function localServersUp(): Promise<boolean> {
  const { connect } = await import('node:net');
  const probe = (port: number) =>
    new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port, timeout: 300 });
      socket.once('connect', () => (socket.destroy(), resolve(true)));
      socket.once('error', () => resolve(false));
      socket.once('timeout', () => (socket.destroy(), resolve(false)));
    });
  const results = await Promise.all([5432, 4222, 6379].map(probe));
  return results.every(Boolean);
}
