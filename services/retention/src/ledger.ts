import { callRpc, publishEvent, readStreamSync, type Bus } from '@parley/bus';
import { MAX_RPC_BATCH, parseErasureEvent, streamName, subjects, type ErasureRecorded } from '@parley/contracts';

export interface LedgerReport {
  /** Entries in the ledger (accounts, messages). */
  entries: number;
  /** Entries copied in from another namespace's ledger (`--ledger-from`). */
  imported: number;
  /** Accounts and messages that were back (a restored backup) and were erased again. */
  accountsReerased: number;
  messagesRedeleted: number;
}

/** Every entry of a namespace's erasure ledger. */
export async function readLedger(bus: Bus, namespace: string): Promise<ErasureRecorded[]> {
  const info = await bus.jsm.streams.info(streamName(namespace, 'erasures')).catch(() => null);
  const entries: ErasureRecorded[] = [];
  await readStreamSync(bus.js, streamName(namespace, 'erasures'), { lastSeq: info?.state.messages ? info.state.last_seq : 0 }, (m) => {
    const parsed = parseErasureEvent(m.json());
    if (parsed.ok) entries.push(parsed.event);
  });
  return entries;
}

/**
 * Copies another namespace's ledger entries into `namespace`'s (idempotent: each entry once).
 * Writing the ledger takes the backup job's bus permissions (restore does it); the retention
 * job's own may only read it, because the ledger is what lets users.reerase and
 * messages.redelete act.
 */
export async function importLedger(bus: Bus, from: string, namespace: string, dryRun = false): Promise<number> {
  let imported = 0;
  for (const entry of await readLedger(bus, from)) {
    if (dryRun) continue;
    const subject = entry.data.kind === 'user' ? subjects.erasedUser(namespace, entry.data.userId) : subjects.erasedMessage(namespace, entry.data.messageId);
    const ack = await publishEvent(bus.js, subject, entry, { msgId: `ledger-import:${entry.meta.eventId}` });
    if (!ack.duplicate) imported++;
  }
  return imported;
}

/**
 * Re-applies the erasure ledger: every account and message erased on request that is present
 * again (a backup restored from before the erasure) is erased again, through the owning services.
 * Runs in every pass, so a restore followed by the routine pass is scrubbed; entries of another
 * namespace's ledger (the system the backup came from) can be imported first.
 */
export async function reapplyLedger(bus: Bus, namespace: string, options: { ledgerFrom?: string | undefined; dryRun: boolean }): Promise<LedgerReport> {
  const imported = options.ledgerFrom && options.ledgerFrom !== namespace ? await importLedger(bus, options.ledgerFrom, namespace, options.dryRun) : 0;
  const entries = await readLedger(bus, namespace);
  const report: LedgerReport = { entries: entries.length, imported, accountsReerased: 0, messagesRedeleted: 0 };
  if (options.dryRun) return report;
  const messageIds: string[] = [];
  for (const { data } of entries) {
    if (data.kind === 'message') {
      messageIds.push(data.messageId);
      continue;
    }
    const { erased } = await callRpc(bus, namespace, 'users.reerase', { userId: data.userId, purgeMessages: data.purgeMessages }, 60_000);
    if (erased) report.accountsReerased++;
  }
  for (let i = 0; i < messageIds.length; i += MAX_RPC_BATCH) {
    const { deleted } = await callRpc(bus, namespace, 'messages.redelete', { messageIds: messageIds.slice(i, i + MAX_RPC_BATCH) }, 60_000);
    report.messagesRedeleted += deleted;
  }
  return report;
}
