import { headers } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { declaredStreams, type StreamDeclaration } from '@parley/contracts';
import { createLogger } from '@parley/log';
import { useTestBus } from './test-bus.js';
import { ensureStreams } from './streams.js';

const log = createLogger({ service: 'test', level: 'silent' });

describe('ensureStreams', () => {
  const t = useTestBus('streams-test');

  it('creates the declared streams, concurrently and idempotently', async () => {
    const declared = Object.values(declaredStreams(t.env.namespace));
    await Promise.all([1, 2, 3].map(() => ensureStreams(t.bus.jsm, declared, log)));
    await ensureStreams(t.bus.jsm, declared, log);
    for (const decl of declared) {
      const info = await t.bus.jsm.streams.info(decl.name);
      expect(info.config.subjects).toEqual(decl.subjects);
      expect(info.config.max_age).toBe(decl.maxAgeSeconds * 1e9);
      expect(info.config.duplicate_window).toBe(120 * 1e9);
      expect(info.config.allow_direct).toBe(true);
    }
  });

  it('brings a drifted stream back in line with its declaration', async () => {
    const decl: StreamDeclaration = {
      name: `${t.env.namespace}_drift`,
      description: 'drift',
      subjects: [`${t.env.namespace}.drift.*`],
      maxAgeSeconds: 0,
      maxMsgsPerSubject: -1,
      duplicateWindowSeconds: 120,
      replicas: 1,
    };
    await ensureStreams(t.bus.jsm, [decl], log);
    await ensureStreams(t.bus.jsm, [{ ...decl, maxAgeSeconds: 3600, maxMsgsPerSubject: 1 }], log);
    const info = await t.bus.jsm.streams.info(decl.name);
    expect(info.config.max_age).toBe(3600 * 1e9);
    expect(info.config.max_msgs_per_subject).toBe(1);
  });

  it('turns rollup headers off on a stream made when they were allowed, and the stream refuses a rollup after', async () => {
    const name = `${t.env.namespace}_rollups`;
    const decl: StreamDeclaration = { name, description: 'rollups', subjects: [`${t.env.namespace}.rollups.*`], maxAgeSeconds: 0, maxMsgsPerSubject: -1, duplicateWindowSeconds: 120, replicas: 1 };
    await t.bus.jsm.streams.add({ name, subjects: decl.subjects, allow_rollup_hdrs: true });
    await t.bus.js.publish(`${t.env.namespace}.rollups.a`, 'first');
    await ensureStreams(t.bus.jsm, [decl], log);
    expect((await t.bus.jsm.streams.info(name)).config.allow_rollup_hdrs).toBe(false);
    const rollup = headers();
    rollup.set('Nats-Rollup', 'sub');
    await expect(t.bus.js.publish(`${t.env.namespace}.rollups.a`, 'second', { headers: rollup })).rejects.toThrow(/rollup/i);
    expect((await t.bus.jsm.streams.info(name)).state.messages).toBe(1);
  });

  it('upgrades a chats stream made before snapshots in place: the snapshot subject is added, every event kept', async () => {
    // As the previous main declared it: no <ns>.chatsnap.* subject.
    const chats = declaredStreams(`${t.env.namespace}up`).chats;
    const before = { ...chats, subjects: chats.subjects.filter((s) => !s.includes('.chatsnap.')) };
    expect(before.subjects).toHaveLength(chats.subjects.length - 1);
    await ensureStreams(t.bus.jsm, [before], log);
    for (let i = 0; i < 3; i++) await t.bus.js.publish(`${t.env.namespace}up.chat.c1`, JSON.stringify({ i }));
    await ensureStreams(t.bus.jsm, [chats], log);
    const info = await t.bus.jsm.streams.info(chats.name);
    expect(info.config.subjects).toEqual(chats.subjects);
    expect(info.state.messages).toBe(3);
    expect((await t.bus.js.publish(`${t.env.namespace}up.chatsnap.c1`, '{}')).seq).toBe(4);
    await t.bus.jsm.streams.delete(chats.name);
  });
});
