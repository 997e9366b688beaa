import path from 'node:path';
import { api, chatHistory, FaultClient, type Account } from './client.js';
import { History, type StoredMessage, type Verdict } from './history.js';
import { PrivateServers, sleep } from './servers.js';
import { scenarioEnv, scenarioNamespace, startServices, type ServiceProcess } from './services.js';

/**
 * One fault scenario's world: private servers, the services as processes, accounts in direct chats
 * and one group, and a FaultClient per account recording into one History. `settleAndCheck()` waits
 * until the faults have healed and everybody caught up, then runs the checker.
 */
export class Scenario {
  readonly history = new History();
  clients: FaultClient[] = [];
  /** chatId → member client names */
  readonly members = new Map<string, string[]>();
  accounts: Account[] = [];
  /** Per chat, at the end of the last settleAndCheck: how far history reached against the acks (for failure messages). */
  lastReads: string[] = [];

  private constructor(
    readonly servers: PrivateServers,
    readonly env: Record<string, string>,
    readonly users: ServiceProcess,
    readonly messages: ServiceProcess,
    readonly gateways: ServiceProcess[],
  ) {}

  static async start(options: { gateways?: number; people?: number; env?: Record<string, string>; natsCluster?: number } = {}): Promise<Scenario> {
    const servers = await PrivateServers.start(scenarioNamespace(), { natsCluster: options.natsCluster });
    try {
      // Attachment files live with the scenario's servers, removed with them.
      const env = scenarioEnv({ ...servers.env(), ATTACHMENTS_DIR: path.join(servers.dir, 'attachments') }, options.env);
      const services = await startServices(env, options.gateways ?? 1);
      const scenario = new Scenario(servers, env, services.users, services.messages, services.gateways);
      await scenario.populate(options.people ?? 6);
      return scenario;
    } catch (error) {
      await servers.stop();
      throw error;
    }
  }

  /** Processes a scenario started itself (a second replica); stopped with the rest. */
  readonly extraServices: ServiceProcess[] = [];

  get services(): ServiceProcess[] {
    return [this.users, this.messages, ...this.gateways, ...this.extraServices];
  }

  /** A gateway that is up, for the scenario's own HTTP calls. */
  get baseUrl(): string {
    return (this.gateways.find((g) => g.running) ?? this.gateways[0]!).baseUrl;
  }

  /** People in pairs of direct chats, plus one group of everybody; sockets spread over the gateways. */
  private async populate(people: number): Promise<void> {
    for (let i = 0; i < people; i++) {
      const username = `f${i}_${Date.now() % 100000}`;
      const password = `pw-${username}-long-enough`;
      const answer = await this.retrying(`register ${username}`, async () => {
        const registered = await api(this.baseUrl, 'POST', '/api/v1/auth/register', undefined, { username, email: `${username}@example.test`, password });
        // Taken: an earlier attempt got through but its answer did not reach us.
        return registered.status === 409 ? api(this.baseUrl, 'POST', '/api/v1/auth/login', undefined, { login: username, password }) : registered;
      });
      this.accounts.push({ id: answer.body.user.id, username, accessToken: answer.body.accessToken });
    }
    const chatsOf = new Map<number, string[]>(this.accounts.map((_, i) => [i, []]));
    const addChat = (chatId: string, indexes: number[]) => {
      this.members.set(chatId, indexes.map((i) => `c${i}`));
      for (const i of indexes) chatsOf.get(i)!.push(chatId);
    };
    for (let i = 0; i + 1 < people; i += 2) {
      // A second request for the same pair answers the first chat (200): safe to retry.
      const chat = await this.retrying('direct chat', () => api(this.baseUrl, 'POST', '/api/v1/chats', this.accounts[i]!.accessToken, { type: 'direct', userId: this.accounts[i + 1]!.id }));
      addChat(chat.body.id, [i, i + 1]);
    }
    // A retry after a lost answer may leave a second, unused group: the clients follow this one.
    const group = await this.retrying('group', () =>
      api(this.baseUrl, 'POST', '/api/v1/chats', this.accounts[0]!.accessToken, { type: 'group', title: 'everybody', memberIds: this.accounts.slice(1).map((a) => a.id) }),
    );
    addChat(group.body.id, this.accounts.map((_, i) => i));

    const gateways = this.gateways.map((g) => ({ wsUrl: g.wsUrl, baseUrl: g.baseUrl }));
    this.clients = this.accounts.map((account, i) => new FaultClient(`c${i}`, account, chatsOf.get(i)!, gateways, this.history, { firstGateway: i }));
    await Promise.all(this.clients.map((c) => c.start()));
  }

  /**
   * A set-up call, retried as a client would while a freshly started (and, with another scenario
   * running beside it, starved) gateway answers nothing or 503; any other failure is final.
   */
  private async retrying(what: string, call: () => Promise<{ status: number; body: any }>): Promise<{ status: number; body: any }> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const answer = await call();
      if (answer.status >= 200 && answer.status < 300) return answer;
      if ((answer.status !== 0 && answer.status !== 503) || Date.now() > deadline) throw new Error(`${what}: ${answer.status} ${JSON.stringify(answer.body)}`);
      await sleep(500);
    }
  }

  /**
   * Waits for the outboxes to empty (every send acked), the projection to hold every acked message,
   * and every member to have received everything; then checks. Fails with the checker's findings
   * and each service's last log lines if anything is wrong.
   */
  async settleAndCheck(timeoutMs = 90_000): Promise<Verdict> {
    const deadline = Date.now() + timeoutMs;
    while (this.clients.some((c) => c.pending > 0) && Date.now() < deadline) await sleep(100);

    const stored = new Map<string, StoredMessage[]>();
    this.lastReads = [];
    for (const [chatId, names] of this.members) {
      const reader = this.accounts[Number(names[0]!.slice(1))]!;
      for (;;) {
        const messages = await chatHistory(this.baseUrl, reader.accessToken, chatId);
        const clients = this.clients.filter((c) => names.includes(c.name));
        const newest = messages?.at(-1)?.seq ?? -1;
        // The projection has every acked message (it applies in stream order; a repaired one comes
        // later, under a new seq), and every member has received up to the newest.
        const caughtUp =
          messages !== undefined &&
          this.history.unacked().length === 0 &&
          newest >= this.history.maxAckedSeq(chatId) &&
          this.history.ackedMissing(chatId, messages) === 0 &&
          clients.every((c) => c.cursor(chatId) >= newest && !c.reloading(chatId));
        if (messages && (caughtUp || Date.now() > deadline)) {
          stored.set(chatId, messages);
          const cursors = clients.map((c) => `${c.name}:${c.cursor(chatId)}${c.reloading(chatId) ? '(reloading)' : ''}`).join(' ');
          this.lastReads.push(`chat ${chatId}: history ${messages.length} messages, newest seq ${newest}; newest acked seq ${this.history.maxAckedSeq(chatId)}; cursors ${cursors}`);
          break;
        }
        if (Date.now() > deadline) throw new Error(`chat ${chatId}: history unavailable at the end\n${this.logs()}`);
        await sleep(200);
      }
    }
    // The load has stopped and the outboxes are empty, so no ack can come after these reads.
    return this.history.check(stored, this.members);
  }

  /** The last log lines of every service, for a failure message. */
  logs(lines = Number(process.env.FAULT_LOG_LINES ?? 15)): string {
    const services = this.services.map((s) => `--- ${s.label}\n${s.output.slice(-lines).join('\n')}`);
    return [...services, '--- clients', ...this.clients.map((c) => c.describe())].join('\n');
  }

  async stop(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.stop()));
    for (const service of this.services) await service.kill('SIGKILL').catch(() => {});
    await this.servers.stop();
  }
}
