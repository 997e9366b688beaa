/**
 * The smallest event a stream consumer can process, for the tests of the consumer loop
 * (@parley/bus's Processor) and of what is built on it (@parley/projector-pg's Projector).
 */
export interface Noted {
  type: 'Noted';
  n: number;
  meta: { eventId: string };
}

/** The consumers' `parse`: a Noted event, or the reason it is not one (poison). */
export function parseNoted(value: unknown): { ok: true; event: Noted } | { ok: false; reason: string } {
  return (value as Noted)?.type === 'Noted' && Number.isInteger((value as Noted).n)
    ? { ok: true, event: value as Noted }
    : { ok: false, reason: 'not a Noted event' };
}
