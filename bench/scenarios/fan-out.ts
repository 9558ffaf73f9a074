// (c) Fan-out: one topic delivering every event to 1 or to 10 subscriptions, one consumer stream
// each; events published in batches. What does each extra subscription cost per published event?
import { performance } from "node:perf_hooks";
import { Ledger } from "../accounting.ts";
import { median } from "../stats.ts";
import type { Consumer, SystemKey } from "../systems/system.ts";
import { awaitDeliveries, publishBatches } from "./load.ts";
import { checkForeign, cleanUp, commitMeter, perSecond, writeLatencyLog } from "./round.ts";
import type { Scenario, ScenarioResults } from "./scenario.ts";

const fanoutOf = (variant: string) => Number.parseInt(variant, 10);

export const fanOut: Scenario = {
  key: "fanout",
  title: "(c) fan-out",
  describe: (o) =>
    `${o.fanoutEvents.toLocaleString("en-US")} events per round published in batches of ${o.batch} to one topic with ${o.fanouts.join(" or ")} subscriptions, one consumer stream each (window ${o.window}). Published ev/s: events / time until every subscription has taken its last ack; deliveries/s counts each subscription's copy.`,
  variants: (o) => o.fanouts.map((k) => `${k} subscription${k === 1 ? "" : "s"}`),
  metrics: [
    { key: "e2e", label: "published ev/s", digits: 0, higherIsBetter: true, ratio: true },
    { key: "deliveries", label: "deliveries/s", digits: 0, higherIsBetter: true },
    { key: "publish", label: "publish-only ev/s", digits: 0, higherIsBetter: true },
    { key: "p99", label: "p99 ms", digits: 1, higherIsBetter: false },
    { key: "commits", label: "commits/1k published", digits: 1, higherIsBetter: false },
    { key: "duplicates", label: "dups", digits: 0, higherIsBetter: false },
  ],
  async run({ system, variant, roundId, name, options, warmup, log }) {
    const n = warmup ? Math.min(options.fanoutEvents, 1_000) : options.fanoutEvents;
    const k = fanoutOf(variant);
    const channel = await system.channel(name, k);
    const consumers: Consumer[] = [];
    try {
      const ledger = new Ledger(roundId, n, k);
      for (let s = 0; s < k; s++) {
        consumers.push(await channel.consume(s, options.window, (stamp) => ledger.receive(stamp, s)));
      }
      let published = 0;
      const meter = commitMeter(system, () => (published + ledger.delivered / k) / 2);
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
      await awaitDeliveries(ledger, n * k, options.stallSeconds, () => ledger.missing(n));
      await channel.drained(options.stallSeconds * 1000);
      const settledAt = performance.now();
      const commits = await meter?.stop();
      checkForeign(ledger);
      if (!warmup) await writeLatencyLog(options.latencyLog, system, name, ledger, log);
      return {
        e2e: perSecond(n, t0, settledAt),
        deliveries: perSecond(n * k, t0, settledAt),
        publish: perSecond(n, t0, publishedAt),
        p99: ledger.latency().p99,
        commits: commits === undefined ? undefined : commits * 1000,
        duplicates: ledger.duplicates,
      };
    } finally {
      await cleanUp(consumers, channel, log);
    }
  },
  summarize(results: ScenarioResults) {
    const variants = [...results.keys()];
    const [one, many] = [variants[0], variants[variants.length - 1]];
    if (!one || !many || one === many) return [];
    const k = fanoutOf(many) / fanoutOf(one);
    const lines = [
      `cost of ${many} vs ${one}, median over rounds (target for pgmesh: <= 2x per published event, issue 21):`,
    ];
    for (const [system, samples] of results.get(many) ?? new Map<SystemKey, never[]>()) {
      const base = results.get(one)?.get(system) ?? [];
      const ratios = samples.flatMap((s, i) => {
        const a = base[i]?.e2e;
        return s.e2e && a ? [a / s.e2e] : [];
      });
      if (ratios.length === 0) continue;
      const perPublished = median(ratios);
      lines.push(
        `  ${system.padEnd(12)} ${perPublished.toFixed(2)}x per published event, ${(perPublished / k).toFixed(2)}x per delivered event`,
      );
    }
    return lines;
  },
};
