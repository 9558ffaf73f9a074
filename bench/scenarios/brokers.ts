// (f) Brokers: 1, 2 or 3 pgmesh brokers on one database, producers spread over them, publishing to
// one topic or to ten. Does a second broker add throughput, and do publishes to one topic collapse
// under the ordering mechanism (publishes of a topic serialise on its row lock)? Each round first
// publishes with nobody consuming (publish alone), on topics of its own, then publishes again with
// one consumer stream per subscription on every broker (end to end).
import { performance } from "node:perf_hooks";
import { PgmeshClient } from "@pgmesh/sdk";
import { Ledger } from "../accounting.ts";
import type { Stamp } from "../payload.ts";
import { event, sdkConsumer } from "../systems/pgmesh.ts";
import type { Consumer } from "../systems/system.ts";
import { pollUntil } from "../systems/system.ts";
import { awaitDeliveries } from "./load.ts";
import { checkForeign, perSecond } from "./round.ts";
import type { Scenario, ScenarioResults } from "./scenario.ts";
import { brokersVariant, parseBrokersVariant, planProducers, scaleOutRatios } from "./spread.ts";

/** Publishes the planned batches, each producer's one after the other, all producers at once. */
async function publishPlanned(
  clients: PgmeshClient[],
  topics: string[],
  roundId: number,
  n: number,
  options: { batch: number; brokerProducers: number },
): Promise<void> {
  const plan = planProducers(n, options.batch, options.brokerProducers, clients.length, topics.length);
  await Promise.all(
    plan.map(async (producer) => {
      const client = clients[producer.broker] as PgmeshClient;
      for (const b of producer.batches) {
        const sentAt = performance.now();
        const stamps: Stamp[] = [];
        for (let index = b.start; index < b.end; index++) stamps.push({ round: roundId, index, sentAt });
        const results = await client.publish(topics[b.topic] as string, stamps.map(event));
        if (results.some((r) => r.duplicate)) throw new Error("pgmesh: publish reported a duplicate");
      }
    }),
  );
}

async function createTopics(client: PgmeshClient, prefix: string, count: number): Promise<string[]> {
  const topics = Array.from({ length: count }, (_, t) => `${prefix}.t${t}`);
  for (const topic of topics) {
    await client.createTopic(topic);
    await client.createSubscription(`${topic}.s`, topic, {
      retryPolicy: { initialBackoffSeconds: 0, maxBackoffSeconds: 0, jitter: 0 },
    });
  }
  return topics;
}

async function deleteTopics(client: PgmeshClient, topics: string[]): Promise<void> {
  for (const topic of topics) {
    await client.deleteSubscription(`${topic}.s`);
    await client.deleteTopic(topic);
  }
}

export const brokers: Scenario = {
  key: "brokers",
  title: "(f) brokers on one database",
  systems: ["pgmesh", "pgmesh-before"],
  describe: (o) =>
    `${o.brokerEvents.toLocaleString("en-US")} events of 200 B per phase, ${o.brokerProducers} producers publishing batches of ${o.batch} (each confirmed before its next), producer p on broker p mod N, batch k to topic k mod T, one subscription per topic, all brokers on one database. Publish alone: no consumer. End to end: a second phase with one consumer stream (window ${o.window}) per subscription on every broker, until the last ack.`,
  variants: (o) => o.brokerTopics.flatMap((t) => o.brokerCounts.map((b) => brokersVariant(b, t))),
  metrics: [
    { key: "e2e", label: "end to end ev/s", digits: 0, higherIsBetter: true, ratio: true },
    { key: "publish", label: "publish alone ev/s", digits: 0, higherIsBetter: true, ratio: true },
    { key: "publishConsuming", label: "publish ev/s (consuming)", digits: 0, higherIsBetter: true },
    { key: "p99", label: "p99 ms", digits: 1, higherIsBetter: false },
    { key: "duplicates", label: "dups", digits: 0, higherIsBetter: false },
  ],
  async run({ system, variant, roundId, name, options, warmup, log }) {
    const n = warmup ? Math.min(options.brokerEvents, 3_000) : options.brokerEvents;
    const { brokers: count, topics: topicCount } = parseBrokersVariant(variant);
    if (!system.brokerAddresses) throw new Error(`${system.label} cannot start more brokers`);
    const addresses = await system.brokerAddresses(count);
    const clients = addresses.map((a) => new PgmeshClient(a, { source: "bench" }));
    // The consumers of each broker on a connection of their own, as a separately deployed service.
    const consumerClients = addresses.map(
      (a) =>
        new PgmeshClient(a, { source: "bench", channelOptions: { "grpc.use_local_subchannel_pool": 1 } }),
    );
    const admin = clients[0] as PgmeshClient;
    const consumers: Consumer[] = [];
    const created: string[] = [];
    try {
      // Publish alone.
      const alone = await createTopics(admin, `${name}.p`, topicCount);
      created.push(...alone);
      const t0 = performance.now();
      await publishPlanned(clients, alone, roundId, n, options);
      const publish = perSecond(n, t0, performance.now());
      await deleteTopics(admin, alone);
      created.splice(0);

      // End to end.
      const topics = await createTopics(admin, `${name}.e`, topicCount);
      created.push(...topics);
      const ledger = new Ledger(roundId, n);
      const errors: unknown[] = [];
      for (const topic of topics)
        for (const c of consumerClients)
          consumers.push(
            await sdkConsumer(c, `${topic}.s`, options.window, (s) => ledger.receive(s), errors),
          );
      const t1 = performance.now();
      await publishPlanned(clients, topics, roundId, n, options);
      const publishedAt = performance.now();
      await awaitDeliveries(ledger, n, options.stallSeconds, () => ledger.missing(n));
      for (const topic of topics)
        await pollUntil(
          async () => {
            if (errors.length > 0) throw new Error(`pgmesh: consumer error: ${String(errors[0])}`);
            return admin.subscriptionStats(`${topic}.s`);
          },
          (stats) => Number(stats.backlog) === 0 && Number(stats.inFlight) === 0,
          options.stallSeconds * 1000,
          (stats) => `${topic}.s: backlog ${stats.backlog}, in flight ${stats.inFlight}`,
        );
      const settledAt = performance.now();
      checkForeign(ledger);
      return {
        e2e: perSecond(n, t1, settledAt),
        publish,
        publishConsuming: perSecond(n, t1, publishedAt),
        p99: ledger.latency().p99,
        duplicates: ledger.duplicates,
      };
    } finally {
      const stopped = await Promise.allSettled(consumers.map((c) => c.stop()));
      for (const r of stopped) if (r.status === "rejected") log(`stopping a consumer: ${String(r.reason)}`);
      await deleteTopics(admin, created).catch((error: unknown) =>
        log(`deleting the topics: ${String(error)}`),
      );
      for (const c of [...clients, ...consumerClients]) c.close();
    }
  },
  summarize(results: ScenarioResults) {
    const lines = [
      "N brokers / 1 broker, median over rounds of the ratio within a round (target: >= 1.0x with 2):",
    ];
    const e2e = scaleOutRatios(results, "e2e");
    const publish = scaleOutRatios(results, "publish");
    for (const r of e2e) {
      const p = publish.find(
        (q) => q.system === r.system && q.topics === r.topics && q.brokers === r.brokers,
      );
      lines.push(
        `  ${r.system.padEnd(14)} ${r.topics} topic${r.topics === 1 ? " " : "s"}, ${r.brokers} brokers: end to end ${r.ratio.toFixed(2)}x, publish alone ${p ? `${p.ratio.toFixed(2)}x` : "-"}`,
      );
    }
    return lines.length > 1 ? lines : [];
  },
};
