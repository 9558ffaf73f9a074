// (a) Throughput: N events of 200 bytes from one producer publishing batches (each confirmed before
// the next), consumed by 1 or 4 streams of one subscription, every event acked; and the same
// publishing with nobody consuming.
import { performance } from "node:perf_hooks";
import { Ledger } from "../accounting.ts";
import type { Consumer } from "../systems/system.ts";
import { awaitDeliveries, publishBatches } from "./load.ts";
import { checkForeign, cleanUp, commitMeter, perSecond, writeLatencyLog } from "./round.ts";
import type { Scenario } from "./scenario.ts";

const PUBLISH_ALONE = "publish alone";
const streamsOf = (variant: string) => (variant === PUBLISH_ALONE ? 0 : Number.parseInt(variant, 10));

export const throughput: Scenario = {
  key: "throughput",
  title: "(a) throughput",
  describe: (o) =>
    `${o.events.toLocaleString("en-US")} events of 200 B per round, one producer publishing batches of ${o.batch} (each confirmed before the next); consumers of one subscription with a window of ${o.window} each, acking every event. End to end: until the system has taken the last ack.`,
  variants: () => ["1 stream", "4 streams", PUBLISH_ALONE],
  metrics: [
    { key: "e2e", label: "end to end ev/s", digits: 0, higherIsBetter: true, ratio: true },
    { key: "publish", label: "publish ev/s", digits: 0, higherIsBetter: true, ratio: true },
    { key: "p50", label: "p50 ms", digits: 1, higherIsBetter: false },
    { key: "p99", label: "p99 ms", digits: 1, higherIsBetter: false },
    { key: "commits", label: "commits/1k ev", digits: 1, higherIsBetter: false },
    { key: "duplicates", label: "dups", digits: 0, higherIsBetter: false },
  ],
  async run({ system, variant, roundId, name, options, warmup, log }) {
    const n = warmup ? Math.min(options.events, 2_000) : options.events;
    const streams = streamsOf(variant);
    const channel = await system.channel(name, 1);
    const consumers: Consumer[] = [];
    try {
      const ledger = new Ledger(roundId, n);
      for (let i = 0; i < streams; i++) {
        consumers.push(await channel.consume(0, options.window, (stamp) => ledger.receive(stamp)));
      }
      let published = 0;
      const meter = commitMeter(system, () => (streams > 0 ? (published + ledger.delivered) / 2 : published));
      meter?.start();
      const t0 = performance.now();
      await publishBatches(
        (s) => channel.publishBatch(s),
        roundId,
        n,
        options.batch,
        (count) => {
          published = count;
        },
      );
      const publishedAt = performance.now();
      let settledAt: number | undefined;
      if (streams > 0) {
        await awaitDeliveries(ledger, n, options.stallSeconds, () => ledger.missing(n));
        await channel.drained(options.stallSeconds * 1000);
        settledAt = performance.now();
      }
      const commits = await meter?.stop();
      checkForeign(ledger);
      if (!warmup) await writeLatencyLog(options.latencyLog, system, name, ledger, log);
      const latency = ledger.latency();
      return {
        e2e: settledAt === undefined ? undefined : perSecond(n, t0, settledAt),
        publish: perSecond(n, t0, publishedAt),
        p50: streams > 0 ? latency.p50 : undefined,
        p99: streams > 0 ? latency.p99 : undefined,
        commits: commits === undefined ? undefined : commits * 1000,
        duplicates: streams > 0 ? ledger.duplicates : undefined,
      };
    } finally {
      await cleanUp(consumers, channel, log);
    }
  },
};
