// The load-generator threads (bench/worker.mjs), driven by request/reply messages.
import path from 'node:path';
import { Worker } from 'node:worker_threads';

export class WorkerPool {
  constructor({ root, count, onSamples }) {
    this.pending = new Map();
    this.nextId = 1;
    this.workers = Array.from({ length: count }, (_, workerIndex) => {
      const worker = new Worker(path.join(root, 'bench', 'worker.mjs'), { workerData: { workerIndex, workerCount: count, seed: 0x9e3779b9 ^ (workerIndex * 7919 + 1) } });
      worker.on('message', (m) => {
        if (m.type === 'samples') onSamples(m.items);
        else if (m.type === 'reply') {
          const p = this.pending.get(m.id);
          this.pending.delete(m.id);
          if (m.error) p?.reject(new Error(`worker ${workerIndex}: ${m.error}`));
          else p?.resolve(m.result);
        }
      });
      worker.on('error', (error) => {
        for (const p of this.pending.values()) p.reject(error);
        this.pending.clear();
      });
      return worker;
    });
  }

  call(index, cmd, args) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.workers[index].postMessage({ id, cmd, args });
    });
  }

  /** Calls every worker; `args` may be a function of the worker index. */
  all(cmd, args) {
    return Promise.all(this.workers.map((_, i) => this.call(i, cmd, typeof args === 'function' ? args(i) : args)));
  }

  async terminate() {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
