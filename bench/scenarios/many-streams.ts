// (d) Many streams: S subscriptions (one topic each) with K consumer streams each, single events
// offered at a total rate spread over the topics by 10 publishers. pgmesh only: the question is
// what so many open streams cost the broker (latency and its resident memory).
import { performance } from "node:perf_hooks";
import { Ledger } from "../accounting.ts";
import type { Channel, Consumer } from "../systems/system.ts";
import { awaitDeliveries, offerLoad } from "./load.ts";
import { checkForeign, cleanUp, commitMeter, writeLatencyLog } from "./round.ts";
import type { Scenario } from "./scenario.ts";
import { keptUp, PUBLISHERS } from "./single-event.ts";

/** Each stream's window: the SDK's default. */
const STREAM_WINDOW = 10;

export const manyStreams: Scenario = {
  key: "streams",
  title: "(d) many streams",
  systems: ["pgmesh", "pgmesh-before"],
  describe: (o) =>
    `${(o.streamSubscriptions * o.streamsPerSubscription).toLocaleString("en-US")} concurrent streams over ${o.streamSubscriptions} subscriptions (one topic each, ${o.streamsPerSubscription} SDK streams per subscription, window ${STREAM_WINDOW}), ${o.streamRate.toLocaleString("en-US")} events/s in all for ${o.streamDurationSeconds} s from ${PUBLISHERS} publishers, one publish call per event (sent when due, as in (b)). Broker RSS: the most seen while the streams were open.`,
  variants: (o) => [`${o.streamSubscriptions * o.streamsPerSubscription} streams`],
  metrics: [
    { key: "delivered", label: "delivered ev/s", digits: 0, higherIsBetter: true },
    { key: "p50", label: "p50 ms", digits: 1, higherIsBetter: false },
    { key: "p99", label: "p99 ms", digits: 1, higherIsBetter: false },
    { key: "max", label: "max ms", digits: 0, higherIsBetter: false },
    { key: "keptUp", label: "kept up", digits: 0, higherIsBetter: true, kind: "count" },
    { key: "rssMb", label: "broker RSS MB", digits: 0, higherIsBetter: false },
    { key: "commits", label: "commits/ev", digits: 2, higherIsBetter: false },
    { key: "duplicates", label: "dups", digits: 0, higherIsBetter: false },
  ],
  async run({ system, roundId, name, options, warmup, log }) {
    const subscriptions = options.streamSubscriptions;
    const seconds = warmup ? Math.min(options.streamDurationSeconds, 1) : options.streamDurationSeconds;
    const rate = options.streamRate;
    const channels: Channel[] = [];
    const consumers: Consumer[] = [];
    let maxRss = system.rssBytes?.() ?? 0;
    const rssTimer = setInterval(() => {
      maxRss = Math.max(maxRss, system.rssBytes?.() ?? 0);
    }, 250);
    try {
      for (let t = 0; t < subscriptions; t++) channels.push(await system.channel(`${name}.t${t}`, 1));
      const ledger = new Ledger(roundId, Math.floor(rate * seconds));
      await Promise.all(
        channels.map(async (channel) => {
          for (let s = 0; s < options.streamsPerSubscription; s++) {
            consumers.push(await channel.consume(0, STREAM_WINDOW, (stamp) => ledger.receive(stamp)));
          }
        }),
      );
      let published = 0;
      const meter = commitMeter(system, () => (published + ledger.delivered) / 2);
      meter?.start();
      const load = await offerLoad(
        (stamp) => (channels[stamp.index % subscriptions] as Channel).publishOne(stamp),
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
      for (const channel of channels) await channel.drained(options.stallSeconds * 1000);
      checkForeign(ledger);
      if (!warmup) await writeLatencyLog(options.latencyLog, system, name, ledger, log);
      const latency = ledger.latency();
      maxRss = Math.max(maxRss, system.rssBytes?.() ?? 0);
      return {
        delivered: ledger.deliveredBy(load.endsAt) / seconds,
        p50: latency.p50,
        p99: latency.p99,
        max: latency.max,
        keptUp: keptUp(load, Math.floor(rate * seconds), ledger) ? 1 : 0,
        rssMb: maxRss > 0 ? maxRss / 2 ** 20 : undefined,
        commits,
        duplicates: ledger.duplicates,
      };
    } finally {
      clearInterval(rssTimer);
      const started = performance.now();
      await Promise.allSettled(consumers.map((c) => c.stop()));
      for (const channel of channels) await cleanUp([], channel, log);
      if (performance.now() - started > 10_000)
        log(
          `closing ${consumers.length} streams took ${((performance.now() - started) / 1000).toFixed(1)} s`,
        );
    }
  },
};
