// Load with exact accounting for fault tests: a producer that retries each batch (same ids) until
// the broker acknowledges it, and consumers that record every delivery. At the end, every
// acknowledged event must have been delivered and acked; duplicates are counted.
import type { PgmeshClient, Subscriber } from "@pgmesh/sdk";
import { sleep } from "./stream-probe.ts";

export interface Accounting {
  /** Events whose publish the broker acknowledged. */
  acknowledged: number;
  /** Publish attempts that failed (and were retried with the same ids). */
  failedPublishes: number;
  /** Events delivered at least once. */
  delivered: number;
  /** Deliveries beyond the first of an event. */
  duplicates: number;
  /** Acknowledged events never delivered: must be 0. */
  lost: number;
  /** Events stored although their publish was never acknowledged (the answer was lost). */
  storedUnacknowledged: number;
}

export class AccountedLoad {
  private readonly acknowledged = new Set<string>();
  private readonly attempted = new Set<string>();
  private readonly deliveries = new Map<string, number>();
  private readonly subscribers: Subscriber[] = [];
  private failedPublishes = 0;
  private producing: Promise<void> | undefined;
  private stopping = false;

  constructor(
    private readonly topic: string,
    private readonly subscription: string,
  ) {}

  /** A consumer on `client` that acks everything it gets. */
  consume(client: PgmeshClient, concurrency = 20): Subscriber {
    const subscriber = client.subscribeRaw(
      this.subscription,
      (event) => {
        this.deliveries.set(event.id, (this.deliveries.get(event.id) ?? 0) + 1);
      },
      { concurrency, reconnectInitialMs: 50, reconnectMaxMs: 500, onError: () => {} },
    );
    this.subscribers.push(subscriber);
    return subscriber;
  }

  /** Publishes batches of `batch` events until stopped; `clients()` picks where each attempt goes. */
  produce(clients: () => PgmeshClient, batch = 10): void {
    this.producing = (async () => {
      for (let n = 0; !this.stopping; n++) {
        const ids = Array.from({ length: batch }, (_, i) => `e${n}-${i}`);
        for (const id of ids) this.attempted.add(id);
        for (;;) {
          try {
            await clients().publish(
              this.topic,
              ids.map((id) => ({ id, source: "faults", type: "t" })),
            );
            for (const id of ids) this.acknowledged.add(id);
            break;
          } catch {
            this.failedPublishes++;
            if (this.stopping) break;
            await sleep(50);
          }
        }
      }
    })();
  }

  async stopProducing(): Promise<void> {
    this.stopping = true;
    await this.producing;
  }

  /** Waits until every acknowledged event was delivered, then closes the consumers. */
  async settle(timeoutMs: number): Promise<Accounting> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && [...this.acknowledged].some((id) => !this.deliveries.has(id))) {
      await sleep(200);
    }
    // Late redeliveries (a lapsed lease whose ack was lost) are duplicates too: give them a moment.
    await sleep(3_000);
    await Promise.all(this.subscribers.map((s) => s.close()));
    const delivered = this.deliveries.size;
    let duplicates = 0;
    for (const count of this.deliveries.values()) duplicates += count - 1;
    return {
      acknowledged: this.acknowledged.size,
      failedPublishes: this.failedPublishes,
      delivered,
      duplicates,
      lost: [...this.acknowledged].filter((id) => !this.deliveries.has(id)).length,
      storedUnacknowledged: [...this.deliveries.keys()].filter((id) => !this.acknowledged.has(id)).length,
    };
  }
}
