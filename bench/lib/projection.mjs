// Send-to-queryable lag and projection backlog.
//
// Lag: a sample of acknowledged messages (their ids and scheduled send times come from the
// workers) is polled in Postgres (messages.messages, the table history reads) every POLL_MS; a
// message counts as queryable at the start of the first poll that finds it, so the figure is an
// upper bound, coarse by at most one poll interval plus one query.
//
// Backlog: the projectors' durable consumers on the chats stream, pending + unacknowledged.
import pg from 'pg';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { Histogram } from './histogram.mjs';

const POLL_MS = 20;
/** A sample that never shows up is given up after this long and counted as not queryable. */
const GIVE_UP_MS = 60_000;
/** Most ids in one poll: a bounded query even when the projection falls far behind. */
const MAX_BATCH = 2_000;

const now = () => Number(process.hrtime.bigint()) / 1e6;

export class QueryableSampler {
  constructor(databaseUrl) {
    this.databaseUrl = databaseUrl;
    this.pending = new Map();
    this.byPhase = new Map();
    this.timer = null;
    this.polling = false;
  }

  async start() {
    this.client = new pg.Client({ connectionString: this.databaseUrl });
    await this.client.connect();
    this.timer = setInterval(() => void this.poll(), POLL_MS);
  }

  add(items) {
    for (const item of items) this.pending.set(item.id, item);
  }

  phase(phase) {
    let entry = this.byPhase.get(phase);
    if (!entry) this.byPhase.set(phase, (entry = { lag: new Histogram(), lost: 0 }));
    return entry;
  }

  async poll() {
    if (this.polling || this.pending.size === 0) return;
    this.polling = true;
    const startedAt = now();
    try {
      const ids = [...this.pending.keys()].slice(0, MAX_BATCH);
      const { rows } = await this.client.query('SELECT id::text AS id FROM messages.messages WHERE id = ANY($1::uuid[])', [ids]);
      for (const { id } of rows) {
        const item = this.pending.get(id);
        if (!item) continue;
        this.pending.delete(id);
        this.phase(item.phase).lag.record(startedAt - item.t0);
      }
      for (const id of ids) {
        const item = this.pending.get(id);
        if (item && startedAt - item.t0 > GIVE_UP_MS) {
          this.pending.delete(id);
          this.phase(item.phase).lost += 1;
        }
      }
    } catch {
      // A failed poll is retried at the next tick; the lag it adds is real and stays measured.
    } finally {
      this.polling = false;
    }
  }

  pendingOf(phase) {
    let n = 0;
    for (const item of this.pending.values()) if (item.phase === phase) n += 1;
    return n;
  }

  async stop() {
    clearInterval(this.timer);
    await this.client?.end().catch(() => {});
  }
}

export class BacklogMonitor {
  constructor(natsUrl, stream) {
    this.natsUrl = natsUrl;
    this.stream = stream;
  }

  async start() {
    this.nc = await connect({ servers: this.natsUrl });
    this.jsm = await jetstreamManager(this.nc);
  }

  /** Events the slowest projector (durable consumer) has not yet committed; per consumer too. */
  async read() {
    const per = {};
    let max = 0;
    for await (const info of this.jsm.consumers.list(this.stream)) {
      if (!info.config.durable_name) continue;
      const n = info.num_pending + info.num_ack_pending;
      per[info.config.durable_name] = n;
      if (n > max) max = n;
    }
    return { max, per };
  }

  /** The last sequence of any stream (0 if it is not there): what was written to it since a reading. */
  async lastSeq(stream) {
    return (await this.jsm.streams.info(stream).catch(() => null))?.state.last_seq ?? 0;
  }

  async stop() {
    await this.nc?.close().catch(() => {});
  }
}
