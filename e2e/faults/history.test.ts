import { describe, expect, it } from 'vitest';
import { bodyFor, History, type StoredMessage } from './harness/history.js';

/**
 * The checker itself: each promise it guards, broken on purpose in a hand-made history, must be
 * reported. A checker that passes everything would make every fault scenario pass too.
 */
const chat = 'chat-1';
const members = new Map([[chat, ['a', 'b']]]);

function world(count = 3) {
  const history = new History();
  for (const client of ['a', 'b']) history.recordStart(client, chat, 0);
  const stored: StoredMessage[] = [];
  for (let i = 1; i <= count; i++) {
    const clientMsgId = `a-${i}`;
    const body = bodyFor(clientMsgId, 'x');
    history.recordSend({ clientMsgId, chatId: chat, client: 'a', body });
    history.recordAck(clientMsgId, { messageId: `m${i}`, seq: i + 1 });
    stored.push({ id: `m${i}`, seq: i + 1, body });
  }
  const deliver = (client: string, seqs: number[]) => {
    for (const seq of seqs) {
      const m = stored.find((s) => s.seq === seq)!;
      history.recordDelivery(client, { chatId: chat, seq, messageId: m.id, body: m.body, via: 'live' });
    }
  };
  return { history, stored, deliver };
}

describe('the history checker', () => {
  it('passes a clean history', () => {
    const { history, stored, deliver } = world();
    deliver('a', [2, 3, 4]);
    deliver('b', [2, 3, 4]);
    expect(history.check(new Map([[chat, stored]]), members).violations).toEqual([]);
  });

  it('reports an acknowledged message missing from history', () => {
    const { history, stored, deliver } = world();
    deliver('a', [2, 3, 4]);
    deliver('b', [2, 3, 4]);
    const violations = history.check(new Map([[chat, stored.filter((m) => m.seq !== 3)]]), members).violations;
    expect(violations.some((v) => v.includes('a-2') && v.includes('missing from history'))).toBe(true);
  });

  it('accepts an ack whose seq the store gave another message too, once the repair stored it later; not a plain wrong seq', () => {
    const { history, stored, deliver } = world();
    // b-1 was acked at seq 4 (a-3 kept it) and repaired to seq 5; a retry answered from history names seq 5.
    const body = bodyFor('b-1', 'x');
    history.recordSend({ clientMsgId: 'b-1', chatId: chat, client: 'b', body });
    history.recordAck('b-1', { messageId: 'm9', seq: 4 });
    history.recordAck('b-1', { messageId: 'm9', seq: 5 });
    const repaired = [...stored, { id: 'm9', seq: 5, body }];
    for (const client of ['a', 'b']) {
      deliver(client, [2, 3, 4]);
      history.recordDelivery(client, { chatId: chat, seq: 5, messageId: 'm9', body, via: 'live' });
    }
    const verdict = history.check(new Map([[chat, repaired]]), members);
    expect(verdict.violations).toEqual([]);
    expect(verdict.stats.repaired).toBe(1);
    // An ack naming a seq after the stored one, or a seq nobody holds, is still wrong.
    history.recordAck('a-1', { messageId: 'm1', seq: 7 });
    expect(history.check(new Map([[chat, repaired]]), members).violations).toEqual(['acked a-1 as m1/7, stored as m1/2']);
  });

  it('reports a message stored twice, and one stored but never sent', () => {
    const { history, stored, deliver } = world();
    deliver('a', [2, 3, 4]);
    deliver('b', [2, 3, 4]);
    const doubled = [...stored, { id: 'm9', seq: 5, body: stored[0]!.body }, { id: 'm10', seq: 6, body: bodyFor('ghost-1', 'x') }];
    const violations = history.check(new Map([[chat, doubled]]), members).violations;
    expect(violations.some((v) => v.includes('a-1 stored twice'))).toBe(true);
    expect(violations.some((v) => v.includes('was never sent'))).toBe(true);
  });

  it('reports a delivery duplicated, reordered, missing, or from nowhere', () => {
    const { history, stored, deliver } = world();
    deliver('a', [2, 4, 3]); // reordered
    deliver('b', [2, 2]); // duplicated, and 3 and 4 never arrive
    history.recordDelivery('b', { chatId: chat, seq: 7, messageId: 'x', body: bodyFor('ghost-2', 'x'), via: 'live' });
    const violations = history.check(new Map([[chat, stored]]), members).violations;
    expect(violations.some((v) => v.includes('a got chat chat-1 seq 3 after seq 4'))).toBe(true);
    expect(violations.some((v) => v.includes('b got chat chat-1 seq 2 twice'))).toBe(true);
    expect(violations.some((v) => v.includes('b never got 2 message(s)'))).toBe(true);
    expect(violations.some((v) => v.includes('never sent to chat'))).toBe(true);
  });

  it('reports two different acks for one clientMsgId, and a send never acknowledged', () => {
    const { history, stored, deliver } = world();
    history.recordAck('a-1', { messageId: 'other', seq: 9 });
    history.recordSend({ clientMsgId: 'a-99', chatId: chat, client: 'a', body: bodyFor('a-99', 'x') });
    deliver('a', [2, 3, 4]);
    deliver('b', [2, 3, 4]);
    const violations = history.check(new Map([[chat, stored]]), members).violations;
    expect(violations.some((v) => v.includes('a-1 acked twice as different messages'))).toBe(true);
    expect(violations.some((v) => v.includes('a-99 to chat chat-1 never acknowledged'))).toBe(true);
  });

  it('expects expired messages gone, and reports one still there', () => {
    const { history, stored, deliver } = world();
    deliver('a', [2, 3, 4]);
    deliver('b', [2, 3, 4]);
    history.expireAcked();
    expect(history.check(new Map([[chat, []]]), members).violations).toEqual([]);
    const violations = history.check(new Map([[chat, stored.slice(0, 1)]]), members).violations;
    expect(violations.some((v) => v.includes('expired but is still in history'))).toBe(true);
  });
});
