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

/**
 * A publisher holds at most this many publish calls in flight; past it, it waits for one to return
 * (a system that cannot take the rate then sees fewer calls, not a pile of calls timing out).
 */
export const MAX_IN_FLIGHT = 100;
/** An event due in the period is still sent this late (a busy event loop wakes timers late). */
const LATE_SEND_GRACE_MS = 250;

export interface OfferedLoad {
  /** When the first event was due, and when the offered period ended (performance.now()). */
  startedAt: number;
  endsAt: number;
  /** Events sent: rate x duration, fewer when MAX_IN_FLIGHT held publishers back past the period. */
  sent: number;
  /** Publishes confirmed in all, and before the period ended. */
  published: number;
  publishedInPeriod: number;
  /** Due time -> confirm, in ms. */
  confirmP50: number;
  confirmP99: number;
}

/**
 * Offers `rate` events/s for `seconds` from `publishers` concurrent publishers: event i is due at
 * start + i / rate and goes to publisher i mod publishers, which sends it then whether or not its
 * earlier calls have returned (an open loop, as requests reach a service), with at most
 * MAX_IN_FLIGHT calls in flight; what is still held back when the period is over is not sent.
 * Latencies run from the due time, not from the call: an event held
 * back by a slow system counts that wait (no coordinated omission).
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
  let sent = 0;
  let published = 0;
  let publishedInPeriod = 0;
  const confirms: number[] = [];
  let failure: unknown;
  const publisher = async (first: number) => {
    const inFlight = new Set<Promise<void>>();
    for (let index = first; index < total && failure === undefined; index += publishers) {
      const wait = startedAt + (index * 1000) / rate - performance.now();
      if (wait > 1) await sleep(wait);
      while (inFlight.size >= MAX_IN_FLIGHT) await Promise.race(inFlight);
      // Held back past the period: the rest is not sent, so a slow system leaves a bounded backlog.
      if (performance.now() > endsAt + LATE_SEND_GRACE_MS) break;
      const sentAt = startedAt + (index * 1000) / rate;
      sent++;
      const call = publishOne({ round: roundId, index, sentAt }).then(
        () => {
          const now = performance.now();
          confirms.push(now - sentAt);
          published++;
          if (now <= endsAt) publishedInPeriod++;
          onPublished();
        },
        (error: unknown) => {
          failure ??= error;
        },
      );
      inFlight.add(call);
      void call.then(() => inFlight.delete(call));
    }
    await Promise.all(inFlight);
  };
  await Promise.all(Array.from({ length: publishers }, (_, j) => publisher(j)));
  if (failure !== undefined) throw failure;
  confirms.sort((a, b) => a - b);
  const at = (q: number) => confirms[Math.min(confirms.length - 1, Math.floor(confirms.length * q))] ?? 0;
  return { startedAt, endsAt, sent, published, publishedInPeriod, confirmP50: at(0.5), confirmP99: at(0.99) };
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
