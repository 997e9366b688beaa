/** The data lifecycle table (docs/retention.md#the-policy), in days. */
export interface RetentionDays {
  messages: number;
  auditLog: number;
  resetTokens: number;
  readReceipts: number;
}

export interface Cutoffs {
  /** Messages (with reactions, polls, votes, search entries) that occurred before this go. */
  messages: Date;
  /**
   * Attachment records (upload events) before this go. A day earlier than messages: a file is
   * uploaded up to ATTACHMENT_GRACE_SECONDS (a day) before the message that carries it, and the
   * upload record of a message that stays must stay too. Files of expired messages go with them.
   */
  attachments: Date;
  auditLog: Date;
  resetTokens: Date;
  readReceipts: Date;
}

const DAY_MS = 86_400_000;

/** Evaluates the policy as of `now` (the real clock, or `--now` for a preview or a test). */
export function cutoffsAt(now: Date, days: RetentionDays): Cutoffs {
  const before = (d: number) => new Date(now.getTime() - d * DAY_MS);
  return {
    messages: before(days.messages),
    attachments: before(days.messages + 1),
    auditLog: before(days.auditLog),
    resetTokens: before(days.resetTokens),
    readReceipts: before(days.readReceipts),
  };
}

/**
 * Splits one chat's expired messages into MessagesExpired events of at most `batch` messages each,
 * so the projection deletes in bounded transactions. `messageSeqs` are the chat seqs of expired
 * messages (ascending); `upToSeq` is the highest expired seq of any kind (a reaction may follow the
 * last message). Returns the `upToSeq` of each event, ascending; the last is always `upToSeq`.
 */
export function expiryChunks(messageSeqs: number[], upToSeq: number, batch: number): number[] {
  const bounds: number[] = [];
  for (let i = batch; i < messageSeqs.length; i += batch) bounds.push(messageSeqs[i - 1]!);
  bounds.push(upToSeq);
  return bounds;
}
