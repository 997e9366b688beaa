import { afterEach, describe, expect, it, vi } from 'vitest';
import { GatewayRoster } from './gateway-roster.js';

describe('GatewayRoster', () => {
  afterEach(() => vi.useRealTimers());

  it('knows the gateways noted, never itself, and the older ones of the last listing only', () => {
    const roster = new GatewayRoster('self', 40_000);
    roster.note(['self', 'a', 'b']);
    roster.setOlder(['old1', 'self']);
    expect(roster.beating().sort()).toEqual(['a', 'b']);
    expect(roster.all().sort()).toEqual(['a', 'b', 'old1']);
    roster.setOlder(['old2']);
    expect(roster.all().sort()).toEqual(['a', 'b', 'old2']);
  });

  it('forgets a beating gateway not noted for forgetAfterMs, and keeps one noted since', () => {
    vi.useFakeTimers();
    vi.setSystemTime(0);
    const roster = new GatewayRoster('self', 40_000);
    roster.note(['gone', 'alive']);
    vi.setSystemTime(30_000);
    roster.note(['alive']);
    roster.forgetUnseen();
    expect(roster.beating().sort()).toEqual(['alive', 'gone']);
    vi.setSystemTime(40_001);
    roster.forgetUnseen();
    expect(roster.beating()).toEqual(['alive']);
  });
});
