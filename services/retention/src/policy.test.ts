import { describe, expect, it } from 'vitest';
import { cutoffsAt, expiryChunks } from './policy.js';

describe('cutoffsAt', () => {
  it('subtracts each class its own number of days', () => {
    const now = new Date('2026-11-29T03:00:00.000Z');
    const c = cutoffsAt(now, { messages: 365, auditLog: 90, resetTokens: 7, readReceipts: 180 });
    expect(c.messages.toISOString()).toBe('2025-11-29T03:00:00.000Z');
    expect(c.attachments.toISOString()).toBe('2025-11-28T03:00:00.000Z');
    expect(c.auditLog.toISOString()).toBe('2026-08-31T03:00:00.000Z');
    expect(c.resetTokens.toISOString()).toBe('2026-11-22T03:00:00.000Z');
    expect(c.readReceipts.toISOString()).toBe('2026-06-02T03:00:00.000Z');
  });
});

describe('expiryChunks', () => {
  it('is one event when the chat has at most a batch of expired messages', () => {
    expect(expiryChunks([1, 2, 5], 7, 5)).toEqual([7]);
    expect(expiryChunks([], 4, 5)).toEqual([4]);
  });

  it('cuts after every full batch and ends at the highest expired seq', () => {
    expect(expiryChunks([2, 3, 4, 6, 8, 9, 10], 12, 3)).toEqual([4, 9, 12]);
    expect(expiryChunks([1, 2, 3, 4], 4, 2)).toEqual([2, 4]);
  });
});
