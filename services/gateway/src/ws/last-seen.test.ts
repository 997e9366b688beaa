import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Bus } from '@parley/bus';
import { LastSeen } from './last-seen.js';

/** The times offline notices carried, as a snapshot reads them beside the bucket (no NATS needed). */
describe('last seen from notices', () => {
  afterEach(() => vi.useRealTimers());
  const lastSeen = () => new LastSeen({ bus: {} as Bus, namespace: 'unit', replicas: 1 });

  it('takes a recent notice\'s time over an older stored one, and the stored one over an older notice', () => {
    const seen = lastSeen();
    seen.noted('u1', '2026-12-07T10:00:05.000Z');
    expect(seen.newest('u1', '2026-12-07T10:00:00.000Z')).toBe('2026-12-07T10:00:05.000Z');
    expect(seen.newest('u1', '2026-12-07T10:00:09.000Z')).toBe('2026-12-07T10:00:09.000Z');
    expect(seen.newest('u1', undefined)).toBe('2026-12-07T10:00:05.000Z');
  });

  it('forgets a notice after a minute though no other notice came (a switch to nobody purges only the bucket)', () => {
    vi.useFakeTimers();
    vi.setSystemTime(new Date('2026-12-07T10:00:00.000Z'));
    const seen = lastSeen();
    seen.noted('u1', '2026-12-07T09:59:59.000Z');
    vi.setSystemTime(new Date('2026-12-07T10:01:01.000Z'));
    // Before: the notice's time, to every new socket, for as long as the gateway was quiet.
    expect(seen.newest('u1', undefined)).toBeUndefined();
  });
});
