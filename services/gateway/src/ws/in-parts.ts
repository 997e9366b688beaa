/**
 * The caller's side of an answer that may stop short (`answersWithin` in packages/contracts):
 * asks about `items` a part at a time, `partSize` choosing how many of those left go in the next
 * request, and asks again for whatever an answer left out. The answers come back in the items'
 * order. Used by the socket set-ups' two requests (ws/setup.ts, ws/presence.ts).
 */
export async function askInParts<T, A>(items: T[], partSize: (rest: T[]) => number, ask: (part: T[]) => Promise<A[]>, method: string): Promise<A[]> {
  const answers: A[] = [];
  let rest = items;
  while (rest.length > 0) {
    const part = rest.slice(0, Math.max(1, partSize(rest)));
    const answered = (await ask(part)).slice(0, part.length);
    if (answered.length === 0) throw new Error(`${method} answered for none of the ${part.length} asked`);
    answers.push(...answered);
    rest = rest.slice(answered.length);
  }
  return answers;
}
