import { deepStrictEqual, fail } from 'node:assert/strict';
import { buildMeta, type ChatEvent } from '@parley/contracts';
import { decide, type ChatCommand, type Decided, type Decision, type Refusal } from './decide.js';
import { fold, initialChatState, type ChatState } from './state.js';

/** Stored events from decided ones: seq 1, 2, … in order, as the writer would append them. */
export function stored(events: Decided[], firstSeq = 1): ChatEvent[] {
  return events.map(
    (e, i) =>
      ({
        ...e,
        version: 1,
        seq: firstSeq + i,
        meta: buildMeta({ eventId: `00000000-0000-7000-8000-${String(firstSeq + i).padStart(12, '0')}`, occurredAt: new Date(0), actorId: null, correlationId: 'spec' }),
      }) as ChatEvent,
  );
}

export function foldChat(events: ChatEvent[], from: ChatState = initialChatState()): ChatState {
  return fold(from, events);
}

/**
 * Given/when/then for the chat decider, as emmett's DeciderSpecification: the given events are
 * folded from the initial state, the command decided against the result, and the decision
 * compared with what is expected. Throws an AssertionError on a mismatch (any test runner).
 */
export function givenChat(...given: Decided[]) {
  return {
    when(command: ChatCommand) {
      const decision: Decision = decide(command, foldChat(stored(given)));
      return {
        decision,
        then(...expected: Decided[]): void {
          if (!decision.ok) fail(`expected ${expected.map((e) => e.type).join(', ') || 'no events'}, but the command was refused: ${decision.code} (${decision.message})`);
          deepStrictEqual(decision.events, expected);
        },
        thenNothingHappened(): void {
          if (!decision.ok) fail(`expected no events, but the command was refused: ${decision.code}`);
          deepStrictEqual(decision.events, []);
        },
        thenRefused(code: Refusal['code'], message?: string): void {
          if (decision.ok) fail(`expected a refusal (${code}), but it decided ${decision.events.map((e) => e.type).join(', ') || 'no events'}`);
          deepStrictEqual(decision.code, code);
          if (message !== undefined) deepStrictEqual(decision.message, message);
        },
      };
    },
  };
}
