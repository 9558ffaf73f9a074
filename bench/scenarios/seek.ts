// (g) Seek: a subscription whose topic retains N events (none consumed) is moved to a time in the
// middle of them, to the first and third quarter, to "earliest" and to a position; how long does
// each SeekSubscription take to answer? After the seek to the middle, the subscription's backlog and
// its first delivery show that the seek landed where it should.
import { performance } from "node:perf_hooks";
import { PgmeshClient } from "@pgmesh/sdk";
import type { Stamp } from "../payload.ts";
import { median } from "../stats.ts";
import { event, sdkConsumer } from "../systems/pgmesh.ts";
import { perSecond } from "./round.ts";
import type { Scenario } from "./scenario.ts";
import { planProducers, whenConfirmed } from "./spread.ts";

/** Producers publishing the retained events at once (fills the topic faster than one). */
const PRODUCERS = 4;

export const seek: Scenario = {
  key: "seek",
  title: "(g) seek",
  // SeekSubscription is new in delivery core v2: the broker before it has no such call.
  systems: ["pgmesh"],
  describe: (o) =>
    `${o.seekEvents.toLocaleString("en-US")} events of 200 B published to one topic (${PRODUCERS} producers, batches of ${o.batch}) with one subscription and no consumer, then SeekSubscription to the time when half the events had been confirmed, to the first and third quarter, to "earliest", and to the middle's position; time to answer (gRPC round trip included). First delivered: the index of the first event delivered after the seek to the middle; off by: that index - the events confirmed by the middle's time, which batches in flight then allow to be 0 to ${PRODUCERS - 1} x ${o.batch} either way (not the subscription's backlog, which counts a cursor's lag only up to 100,000).`,
  variants: (o) => [`${o.seekEvents} events`],
  metrics: [
    { key: "seekTime", label: "seek to a time ms (median of 3)", digits: 1, higherIsBetter: false },
    { key: "seekTimeMax", label: "slowest ms", digits: 1, higherIsBetter: false },
    { key: "seekEarliest", label: "earliest ms", digits: 1, higherIsBetter: false },
    { key: "seekPosition", label: "position ms", digits: 1, higherIsBetter: false },
    { key: "offBy", label: "off by (events)", digits: 0, higherIsBetter: false },
    { key: "firstIndex", label: "first delivered", digits: 0, higherIsBetter: false },
    { key: "publish", label: "publish ev/s", digits: 0, higherIsBetter: true },
  ],
  async run({ system, roundId, name, options, warmup, log }) {
    const n = warmup ? Math.min(options.seekEvents, 2_000) : options.seekEvents;
    if (!system.brokerAddresses) throw new Error(`${system.label} has no broker to seek on`);
    const [address] = await system.brokerAddresses(1);
    const client = new PgmeshClient(address as string, { source: "bench" });
    const consumerClient = new PgmeshClient(address as string, {
      source: "bench",
      channelOptions: { "grpc.use_local_subchannel_pool": 1 },
    });
    const subscription = `${name}.s`;
    let consumer: { stop(): Promise<void> } | undefined;
    try {
      await client.createTopic(name);
      await client.createSubscription(subscription, name);
      const readings: { at: Date; count: number }[] = [];
      let confirmed = 0;
      const plan = planProducers(n, options.batch, PRODUCERS, 1, 1);
      const t0 = performance.now();
      await Promise.all(
        plan.map(async (producer) => {
          for (const b of producer.batches) {
            const sentAt = performance.now();
            const stamps: Stamp[] = [];
            for (let index = b.start; index < b.end; index++) stamps.push({ round: roundId, index, sentAt });
            await client.publish(name, stamps.map(event));
            confirmed += stamps.length;
            readings.push({ at: new Date(), count: confirmed });
          }
        }),
      );
      const publish = perSecond(n, t0, performance.now());
      const timed = async <T>(call: () => Promise<T>): Promise<[number, T]> => {
        const start = performance.now();
        const result = await call();
        return [performance.now() - start, result];
      };
      const marks = [n / 4, (3 * n) / 4, n / 2].map((c) => whenConfirmed(readings, Math.ceil(c)) as Date);
      const timeSeeks: number[] = [];
      let middle = { position: 0 };
      for (const mark of marks) {
        const [ms, answer] = await timed(() => client.seekSubscription(subscription, mark));
        timeSeeks.push(ms);
        middle = { position: Number(answer.position) };
      }
      // Seeked to the middle last: what it left pending, against what was confirmed after the mark.
      // Events confirmed by the mark are before it; batches in flight then may be either side.
      const confirmedByMark = readings.find((r) => r.at === marks[2])?.count ?? 0;
      const stats = await client.subscriptionStats(subscription);
      // The first event delivered after the seek to the middle.
      const errors: unknown[] = [];
      let firstIndex: number | undefined;
      const first = new Promise<void>((resolve) => {
        const receive = (stamp: Stamp) => {
          if (firstIndex === undefined) firstIndex = stamp.index;
          resolve();
        };
        void sdkConsumer(consumerClient, subscription, 1, receive, errors).then((c) => {
          consumer = c;
        });
      });
      await Promise.race([
        first,
        new Promise((_, reject) =>
          setTimeout(
            () => reject(new Error("nothing delivered after the seek")),
            options.stallSeconds * 1000,
          ),
        ),
      ]);
      await consumer?.stop();
      consumer = undefined;
      const [earliestMs] = await timed(() => client.seekSubscription(subscription, "earliest"));
      const [positionMs] = await timed(() => client.seekSubscription(subscription, middle));
      if (!warmup)
        log(
          `seek to the middle: position ${middle.position}, backlog ${stats.backlog}, cursor lag ${stats.cursorLag}`,
        );
      return {
        seekTime: median(timeSeeks),
        seekTimeMax: Math.max(...timeSeeks),
        seekEarliest: earliestMs,
        seekPosition: positionMs,
        offBy: firstIndex === undefined ? undefined : firstIndex - confirmedByMark,
        firstIndex,
        publish,
      };
    } finally {
      await consumer?.stop().catch(() => {});
      await client
        .deleteSubscription(subscription)
        .then(() => client.deleteTopic(name))
        .catch((error: unknown) => log(`deleting the topic: ${String(error)}`));
      client.close();
      consumerClient.close();
    }
  },
};
