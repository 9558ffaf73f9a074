// Exact accounting of one round: every event a consumer hands over is checked off in a bitmap per
// subscription, so losses (never checked off), duplicates (checked off twice) and events of another
// round are counted, not guessed. It also keeps each first delivery's time and latency.
import { performance } from "node:perf_hooks";
import type { Stamp } from "./payload.ts";

export class Ledger {
  /** First deliveries so far, over all subscriptions. */
  delivered = 0;
  duplicates = 0;
  foreign = 0;
  private readonly seen: Uint8Array;
  /** Publish-to-delivery time of each first delivery, in arrival order (ms). */
  private readonly latencies: Float64Array;
  /** When each first delivery arrived, in arrival order (performance.now()). */
  private readonly arrivals: Float64Array;
  private waiter: { count: number; resolve: () => void } | undefined;

  /** Room for `capacity` events per subscription (round `round`), delivered to `subscriptions` each. */
  constructor(
    readonly round: number,
    readonly capacity: number,
    readonly subscriptions = 1,
  ) {
    this.seen = new Uint8Array(capacity * subscriptions);
    this.latencies = new Float64Array(capacity * subscriptions);
    this.arrivals = new Float64Array(capacity * subscriptions);
  }

  /** A consumer of subscription `subscription` (0-based) received this event. */
  receive(stamp: Stamp, subscription = 0): void {
    const now = performance.now();
    const { round, index } = stamp;
    if (
      round !== this.round ||
      !(index >= 0 && index < this.capacity) ||
      subscription >= this.subscriptions
    ) {
      this.foreign++;
      return;
    }
    const slot = subscription * this.capacity + index;
    if (this.seen[slot]) {
      this.duplicates++;
      return;
    }
    this.seen[slot] = 1;
    this.latencies[this.delivered] = now - stamp.sentAt;
    this.arrivals[this.delivered] = now;
    this.delivered++;
    if (this.waiter && this.delivered >= this.waiter.count) {
      this.waiter.resolve();
      this.waiter = undefined;
    }
  }

  /** Resolves once `count` distinct deliveries (over all subscriptions) have arrived. */
  whenDelivered(count: number): Promise<void> {
    if (this.delivered >= count) return Promise.resolve();
    return new Promise((resolve) => {
      this.waiter = { count, resolve };
    });
  }

  /** When the k-th first delivery (1-based) arrived. */
  arrivalOf(k: number): number {
    return this.arrivals[Math.max(0, Math.min(this.delivered, k) - 1)] ?? 0;
  }

  /** First deliveries that arrived at or before `time`. */
  deliveredBy(time: number): number {
    // Arrivals are in order: binary search.
    let lo = 0;
    let hi = this.delivered;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((this.arrivals[mid] as number) <= time) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Latency percentiles (ms) of the first deliveries so far. */
  latency(): { p50: number; p99: number; max: number } {
    const sorted = this.latencies.slice(0, this.delivered).sort();
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))] ?? 0;
    return { p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1] ?? 0 };
  }

  /**
   * The latency log: one line per first delivery, in arrival order, with the event's stamp time
   * (when it was sent, or due in (b); ms after the first of them) and its latency (ms). A tail that comes in bursts (every
   * event waiting behind one pause) looks different here from one spread over the run.
   */
  latencyLog(): string {
    let start = Number.POSITIVE_INFINITY;
    for (let i = 0; i < this.delivered; i++) {
      start = Math.min(start, (this.arrivals[i] as number) - (this.latencies[i] as number));
    }
    const lines = ["published_ms\tlatency_ms"];
    for (let i = 0; i < this.delivered; i++) {
      const latency = this.latencies[i] as number;
      const published = (this.arrivals[i] as number) - latency - start;
      lines.push(`${published.toFixed(1)}\t${latency.toFixed(2)}`);
    }
    return `${lines.join("\n")}\n`;
  }

  /** Which of the first `published` events of each subscription never arrived (a few, for the message). */
  missing(published: number): string {
    const lost: string[] = [];
    let count = 0;
    for (let s = 0; s < this.subscriptions; s++) {
      for (let i = 0; i < published; i++) {
        if (!this.seen[s * this.capacity + i]) {
          count++;
          if (lost.length < 5) lost.push(this.subscriptions > 1 ? `${s}:${i}` : String(i));
        }
      }
    }
    return `${count} of ${published * this.subscriptions} deliveries missing (e.g. ${lost.join(", ")})`;
  }
}
