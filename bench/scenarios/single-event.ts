// (b) Single-event publishes, as a service publishes one event per request: a fixed offered rate
// from 10 concurrent publishers (one publish call per event, sent when due whether or not earlier
// calls have returned) for a fixed time, one consumer stream with the usual window. Did publishing
// and delivery keep up, and how long did an event take from its publish call to its consumer?
import { Ledger } from "../accounting.ts";
import type { Consumer } from "../systems/system.ts";
import { awaitDeliveries, MAX_IN_FLIGHT, type OfferedLoad, offerLoad } from "./load.ts";
import { checkForeign, cleanUp, commitMeter, writeLatencyLog } from "./round.ts";
import type { Scenario } from "./scenario.ts";

export const PUBLISHERS = 10;
/** Kept up: every offered event sent and delivered within this long after the offered period. */
export const KEPT_UP_GRACE_MS = 1_000;

export const singleEvent: Scenario = {
  key: "single",
  title: "(b) single-event publishes",
  describe: (o) =>
    `Offered ${o.rates.map((r) => r.toLocaleString("en-US")).join(" and ")} events/s for ${o.durationSeconds} s from ${PUBLISHERS} concurrent publishers, one publish call per event, each sent when due (an open loop, at most ${MAX_IN_FLIGHT.toLocaleString("en-US")} calls in flight per publisher; what is still held back at the end is not sent); one consumer stream (window ${o.window}). Kept up: every offered event sent and delivered within ${KEPT_UP_GRACE_MS / 1000} s after the period. Published: confirmed within the period. Latency: due time -> consumer; confirm: due time -> confirm (a publish held back counts its wait).`,
  variants: (o) => o.rates.map((r) => `${r}/s`),
  metrics: [
    { key: "published", label: "published ev/s", digits: 0, higherIsBetter: true },
    { key: "confirmP99", label: "confirm p99 ms", digits: 1, higherIsBetter: false },
    { key: "delivered", label: "delivered ev/s", digits: 0, higherIsBetter: true, ratio: true },
    { key: "p50", label: "p50 ms", digits: 1, higherIsBetter: false, ratio: true },
    { key: "p99", label: "p99 ms", digits: 1, higherIsBetter: false, ratio: true },
    { key: "max", label: "max ms", digits: 0, higherIsBetter: false },
    { key: "keptUp", label: "kept up", digits: 0, higherIsBetter: true, kind: "count" },
    { key: "commits", label: "commits/ev", digits: 2, higherIsBetter: false },
    { key: "duplicates", label: "dups", digits: 0, higherIsBetter: false },
  ],
  async run({ system, variant, roundId, name, options, warmup, log }) {
    const rate = Number.parseInt(variant, 10);
    const seconds = warmup ? Math.min(options.durationSeconds, 1) : options.durationSeconds;
    const capacity = Math.floor(rate * seconds);
    const channel = await system.channel(name, 1);
    const consumers: Consumer[] = [];
    try {
      const ledger = new Ledger(roundId, capacity);
      consumers.push(await channel.consume(0, options.window, (stamp) => ledger.receive(stamp)));
      let published = 0;
      const meter = commitMeter(system, () => (published + ledger.delivered) / 2);
      meter?.start();
      const load = await offerLoad(
        (s) => channel.publishOne(s),
        roundId,
        rate,
        seconds,
        PUBLISHERS,
        () => {
          published++;
        },
      );
      const commits = await meter?.stop();
      await awaitDeliveries(
        ledger,
        load.published,
        options.stallSeconds,
        () => `${load.published - ledger.delivered} of ${load.published} published events never delivered`,
      );
      await channel.drained(options.stallSeconds * 1000);
      checkForeign(ledger);
      if (!warmup) await writeLatencyLog(options.latencyLog, system, name, ledger, log);
      const latency = ledger.latency();
      return {
        published: load.publishedInPeriod / seconds,
        confirmP99: load.confirmP99,
        delivered: ledger.deliveredBy(load.endsAt) / seconds,
        p50: latency.p50,
        p99: latency.p99,
        max: latency.max,
        keptUp: keptUp(load, capacity, ledger) ? 1 : 0,
        commits,
        duplicates: ledger.duplicates,
      };
    } finally {
      await cleanUp(consumers, channel, log);
    }
  },
};

/** Every offered event was sent, and the last delivery came within the grace after the period. */
export function keptUp(load: OfferedLoad, offered: number, ledger: Ledger): boolean {
  return load.sent === offered && ledger.arrivalOf(load.published) <= load.endsAt + KEPT_UP_GRACE_MS;
}
