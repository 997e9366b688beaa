import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectBus, streamConfig, type Bus } from '@parley/bus';
import { declaredStreams, subjects } from '@parley/contracts';
import { createLogger } from '@parley/log';
import { createTestEnv, type TestEnv } from '@parley/testing';
import { exportStream, type ExportedMessage } from './streams.js';

const log = createLogger({ service: 'backup-streams-test', level: 'silent' });

describe('exportStream of a stream keeping one message per subject (receipts)', () => {
  let env: TestEnv;
  let bus: Bus;
  const dir = mkdtempSync(path.join(tmpdir(), 'parley-export-'));

  beforeAll(async () => {
    env = await createTestEnv();
    bus = await connectBus({ url: env.natsUrl, identity: env.busIdentity, name: 'backup-streams-test', log });
  });
  afterAll(async () => {
    await bus?.nc.close();
    await env?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps a receipt stored before the backup that a newer one replaced while the export ran', async () => {
    // The export read each stream up to the end it had read before; a receipt at or below it that a
    // newer one of the same member and chat replaced meanwhile was gone, and its replacement lay past
    // that end: the archive held neither.
    const ns = env.namespace;
    const decl = declaredStreams(ns).receipts;
    await bus.jsm.streams.add(streamConfig(decl));
    const count = 20_000;
    const acks = [];
    for (let i = 0; i < count; i++) acks.push(bus.js.publish(subjects.receipt(ns, `chat${i}`, 'ann'), JSON.stringify({ upTo: i })));
    await Promise.all(acks);
    // The receipt the export reaches last: the one that will be replaced.
    const last = await bus.js.publish(subjects.receipt(ns, 'chat0', 'bob'), JSON.stringify({ upTo: 1 }));
    const file = path.join(dir, 'receipts.ndjson');
    const exporting = exportStream(bus, ns, decl.name, last.seq, file, { oneMessagePerSubject: true });
    // Once the export has begun writing (far from its end), Bob reads further in chat0.
    while (!(statSync(file, { throwIfNoEntry: false })?.size ?? 0)) await new Promise((r) => setTimeout(r, 1));
    const newer = await bus.js.publish(subjects.receipt(ns, 'chat0', 'bob'), JSON.stringify({ upTo: 2 }));
    // And Ann in the chat whose receipt (the stream's first message) the export has already written.
    const annNewer = await bus.js.publish(subjects.receipt(ns, 'chat0', 'ann'), JSON.stringify({ upTo: 5 }));
    const exported = await exporting;
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as ExportedMessage);
    const of = (subject: string) => lines.filter((l) => l.subject === subject).map((l) => [l.seq, JSON.parse(Buffer.from(l.data, 'base64').toString())]);
    expect(of('receipt.chat0.bob')).toEqual([[newer.seq, { upTo: 2 }]]);
    expect(of('receipt.chat0.ann')).toEqual([[annNewer.seq, { upTo: 5 }]]);
    // Each subject once (a restored stream keeps only one), the export ending at the replacement.
    expect(lines).toHaveLength(count + 1);
    expect(new Set(lines.map((l) => l.subject)).size).toBe(count + 1);
    expect(exported.messages).toBe(count + 1);
    expect(exported.lastSeq).toBe(annNewer.seq);
    // The count and digest are of what the file holds: what verify reads back after a restore.
    const again = await exportStream(bus, ns, decl.name, annNewer.seq, path.join(dir, 'again.ndjson'));
    expect(again.digest).toBe(exported.digest);
  }, 120_000);
});
