import type { ValidationIssue } from './validate.js';

/**
 * Deepest JSON a client may send. No request body or frame in api.md nests deeper than 4 levels
 * (a resume frame's cursors, a group's memberIds); 32 leaves room for additions. The limit exists
 * because JSON.stringify and TypeBox recurse: a 5,000-deep array body once overflowed the
 * gateway's stack while it forwarded the request (issue 10's fuzzing found it).
 */
export const MAX_INPUT_DEPTH = 32;

/**
 * What is wrong with client input that no schema can say: nesting deeper than `maxDepth`, or text
 * that PostgreSQL cannot store. U+0000 is refused by PostgreSQL's text type, and a lone UTF-16
 * surrogate is not a character at all (it would be stored as U+FFFD, differing from what was
 * acknowledged). Either one used to pass the schemas, be published as an event, and then fail the
 * projection on every retry until the projector terminated it: an acked message missing from
 * history. So they are refused at the edge, with a 400, before anything is published.
 *
 * Walks keys and values iteratively (the input may be too deep for recursion); returns the first
 * issue, or null when the input is acceptable.
 */
export function inputIssue(value: unknown, maxDepth = MAX_INPUT_DEPTH): ValidationIssue | null {
  const stack: { value: unknown; path: string; depth: number }[] = [{ value, path: '', depth: 0 }];
  while (stack.length > 0) {
    const item = stack.pop()!;
    if (typeof item.value === 'string') {
      const problem = textProblem(item.value);
      if (problem) return { path: item.path || '/', message: problem };
      continue;
    }
    if (typeof item.value !== 'object' || item.value === null) continue;
    if (item.depth >= maxDepth) return { path: item.path || '/', message: `Nested deeper than ${maxDepth} levels` };
    const entries = Array.isArray(item.value) ? item.value.map((v, i) => [String(i), v] as const) : Object.entries(item.value);
    for (const [key, child] of entries) {
      const path = `${item.path}/${key}`;
      const keyProblem = textProblem(key);
      if (keyProblem) return { path, message: `Key: ${keyProblem}` };
      stack.push({ value: child, path, depth: item.depth + 1 });
    }
  }
  return null;
}

/** A high surrogate not followed by a low one, or a low one not preceded by a high one. (String.prototype.isWellFormed is ES2024, past this project's lib.) */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function textProblem(text: string): string | null {
  if (text.includes('\u0000')) return 'Contains U+0000, which text may not hold';
  if (LONE_SURROGATE.test(text)) return 'Contains a lone UTF-16 surrogate (not Unicode text)';
  return null;
}
