// The load shapes the scenarios share: batches published back to back, single events offered at a
// fixed rate by concurrent publishers, and waiting for deliveries with a stall watchdog.
import { performance } from "node:perf_hooks";
import type { Ledger } from "../accounting.ts";
import type { Stamp } from "../payload.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Publishes events 0..n-1 in batches, each confirmed before the next; calls `published` after each. */
export async function publishBatches(
  publish: (stamps: Stamp[]) => Promise<void>,
  roundId: number,
  n: number,
  batch: number,
  published: (count: number) => void,
): Promise<void> {
  for (let start = 0; start < n; start += batch) {
    const sentAt = performance.now();
    const stamps: Stamp[] = [];
    for (let index = start; index < Math.min(n, start + batch); index++)
      stamps.push({ round: roundId, index, sentAt });
    await publish(stamps);
    published(start + stamps.length);
  }
}

export interface OfferedLoad {
  /** When the first event was due, and when the offered period ended (performance.now()). */
  startedAt: number;
  endsAt: number;
  /** Events published (confirmed); not more than rate x duration. */
  published: number;
}

/**
 * Offers `rate` events/s for `seconds` from `publishers` concurrent publishers, each with one
 * publish in flight: event i is due at start + i / rate and goes to publisher i mod publishers. A
 * publisher that falls behind sends its next event at once, and stops when the period is over, so
 * a system that cannot take the rate publishes fewer events.
 */
export async function offerLoad(
  publishOne: (stamp: Stamp) => Promise<void>,
  roundId: number,
  rate: number,
  seconds: number,
  publishers: number,
  onPublished: () => void = () => {},
): Promise<OfferedLoad> {
  const total = Math.floor(rate * seconds);
  const startedAt = performance.now() + 5;
  const endsAt = startedAt + seconds * 1000;
  let published = 0;
  const publisher = async (first: number) => {
    for (let index = first; index < total; index += publishers) {
      const due = startedAt + (index * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
      if (performance.now() >= endsAt) return;
      await publishOne({ round: roundId, index, sentAt: performance.now() });
      published++;
      onPublished();
    }
  };
  await Promise.all(Array.from({ length: publishers }, (_, j) => publisher(j)));
  return { startedAt, endsAt, published };
}

/**
 * Waits until `count` distinct deliveries have arrived. Fails (events lost) when none arrives for
 * `stallSeconds` while some are missing.
 */
export async function awaitDeliveries(
  ledger: Ledger,
  count: number,
  stallSeconds: number,
  missing: () => string,
): Promise<void> {
  const done = ledger.whenDelivered(count);
  let lastCount = ledger.delivered;
  let lastMove = performance.now();
  for (;;) {
    const finished = await Promise.race([done.then(() => true), sleep(250).then(() => false)]);
    if (finished) return;
    if (ledger.delivered !== lastCount) {
      lastCount = ledger.delivered;
      lastMove = performance.now();
    } else if (performance.now() - lastMove > stallSeconds * 1000) {
      throw new Error(`lost events: nothing delivered for ${stallSeconds} s; ${missing()}`);
    }
  }
}
