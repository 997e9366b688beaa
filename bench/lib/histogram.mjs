// A log-linear latency histogram in the spirit of HdrHistogram: values are recorded in whole
// microseconds; below 128 µs every value has its own bucket, above it each power of two is split
// into 64 buckets, so any reported percentile is within 0.8 % of the true value. Fixed size
// (1,664 counters), so worker threads can ship it to the main thread with postMessage and the
// main thread merges by adding counts. We wrote these 60 lines instead of adding hdr-histogram-js
// because the workspace lockfile is being edited by others and this needs nothing more.

const SUB = 64;
const SIZE = 26 * SUB;
const MAX_US = 2 ** 31 - 1;

function indexOf(us) {
  if (us < 2 * SUB) return us;
  const shift = 31 - Math.clz32(us) - 6;
  return shift * SUB + Math.floor(us / 2 ** shift);
}

function valueOf(index) {
  if (index < 2 * SUB) return index;
  const shift = Math.floor(index / SUB) - 1;
  const m = index - shift * SUB;
  // Middle of the bucket.
  return (m + 0.5) * 2 ** shift;
}

export class Histogram {
  constructor() {
    this.counts = new Float64Array(SIZE);
    this.n = 0;
    this.sum = 0;
    this.min = Infinity;
    this.max = 0;
  }

  /** Records a duration given in milliseconds (fractions kept to the microsecond). */
  record(ms) {
    const us = Math.min(MAX_US, Math.max(0, Math.round(ms * 1000)));
    this.counts[indexOf(us)] += 1;
    this.n += 1;
    this.sum += us;
    if (us < this.min) this.min = us;
    if (us > this.max) this.max = us;
  }

  /** The value (ms) below which `p` percent of the recorded values fall; null when empty. */
  percentile(p) {
    if (this.n === 0) return null;
    const rank = Math.max(1, Math.ceil((p / 100) * this.n));
    let seen = 0;
    for (let i = 0; i < SIZE; i++) {
      seen += this.counts[i];
      if (seen >= rank) return Math.min(this.max, Math.max(this.min, valueOf(i))) / 1000;
    }
    return this.max / 1000;
  }

  summary() {
    const r = (v) => (v === null ? null : Math.round(v * 100) / 100);
    return {
      count: this.n,
      mean: this.n ? r(this.sum / this.n / 1000) : null,
      p50: r(this.percentile(50)),
      p99: r(this.percentile(99)),
      p999: r(this.percentile(99.9)),
      max: this.n ? r(this.max / 1000) : null,
    };
  }

  /** A plain object that survives postMessage. */
  toJSON() {
    return { counts: this.counts, n: this.n, sum: this.sum, min: this.min, max: this.max };
  }

  static from(data) {
    const h = new Histogram();
    h.add(data);
    return h;
  }

  add(other) {
    if (!other || other.n === 0) return this;
    for (let i = 0; i < SIZE; i++) this.counts[i] += other.counts[i];
    this.n += other.n;
    this.sum += other.sum;
    this.min = Math.min(this.min, other.min);
    this.max = Math.max(this.max, other.max);
    return this;
  }
}
