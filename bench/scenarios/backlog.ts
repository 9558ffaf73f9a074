// (e) Backlog: N events published with no consumer, then drained by one consumer stream. Does
// publishing slow down as the backlog grows, does the drain slow down towards its end, and how many
// bytes of tables does a pending event take, and how long does one fetch take while draining
// (Postgres-based systems)?
import { performance } from "node:perf_hooks";
import { Ledger } from "../accounting.ts";
import { fetchesBetween } from "../fetch-tally.ts";
import { growthPerEvent, relationBytes, tableBytes } from "../postgres-admin.ts";
import type { Consumer } from "../systems/system.ts";
import { awaitDeliveries, publishBatches } from "./load.ts";
import { checkForeign, cleanUp, perSecond } from "./round.ts";
import type { Scenario } from "./scenario.ts";

export const backlog: Scenario = {
  key: "backlog",
  title: "(e) backlog",
  // The raw gRPC client drains through the same broker path as the SDK; leave it out of the longest run.
  systems: ["pgmesh", "pgmesh-before", "pgboss", "rabbitmq", "nats", "skiplocked"],
  describe: (o) =>
    `${o.backlogEvents.toLocaleString("en-US")} events published in batches of ${o.batch} with no consumer, then drained by one consumer stream (window ${o.window}). First/last 10 %: the rate over the first and the last tenth of the events (when a tenth spans at least 4 batches or windows). Bytes per event: growth of the system's tables (with indexes and TOAST) / events, after publishing and after the drain.`,
  variants: (o) => [`${o.backlogEvents} events`],
  metrics: [
    { key: "publish", label: "publish ev/s", digits: 0, higherIsBetter: true, ratio: true },
    { key: "publishFirst", label: "publish 1st 10%", digits: 0, higherIsBetter: true },
    { key: "publishLast", label: "publish last 10%", digits: 0, higherIsBetter: true },
    { key: "pendingBytes", label: "B/pending ev", digits: 0, higherIsBetter: false },
    { key: "drain", label: "drain ev/s", digits: 0, higherIsBetter: true, ratio: true },
    { key: "drainFirst", label: "drain 1st 10%", digits: 0, higherIsBetter: true },
    { key: "drainLast", label: "drain last 10%", digits: 0, higherIsBetter: true },
    { key: "fetchMs", label: "fetch ms (mean)", digits: 1, higherIsBetter: false },
    { key: "slowFetches", label: "fetches > 20 ms %", digits: 1, higherIsBetter: false },
    { key: "drainedBytes", label: "B/ev after drain", digits: 0, higherIsBetter: false },
    { key: "duplicates", label: "dups", digits: 0, higherIsBetter: false },
  ],
  async run({ system, roundId, name, options, warmup, log }) {
    const n = warmup ? Math.min(options.backlogEvents, 2_000) : options.backlogEvents;
    const tenth = Math.max(1, Math.floor(n / 10));
    const db = system.database?.();
    const bytes = () => (db ? tableBytes(db.url, db.schemas) : Promise.resolve(undefined));
    const channel = await system.channel(name, 1);
    const consumers: Consumer[] = [];
    try {
      const before = await bytes();
      const relationsBefore = db && !warmup ? await relationBytes(db.url, db.schemas) : undefined;
      // (time, events confirmed) after each batch, for the rates over the first and last tenth.
      const progress: { at: number; count: number }[] = [];
      const t0 = performance.now();
      await publishBatches(
        (s) => channel.publishBatch(s),
        roundId,
        n,
        options.batch,
        (count) => {
          progress.push({ at: performance.now(), count });
        },
      );
      const publishedAt = performance.now();
      const pending = await bytes();
      // Where the bytes of a pending event go, relation by relation (the B/pending column's sum).
      if (db && relationsBefore) {
        const growth = growthPerEvent(relationsBefore, await relationBytes(db.url, db.schemas), n);
        log(
          `bytes per pending event: ${growth.map((g) => `${g.relation} ${g.bytesPerEvent.toFixed(0)}`).join(", ")}`,
        );
      }
      const ledger = new Ledger(roundId, n);
      const fetchesBefore = await channel.fetches?.();
      const drainStart = performance.now();
      consumers.push(await channel.consume(0, options.window, (stamp) => ledger.receive(stamp)));
      await awaitDeliveries(ledger, n, options.stallSeconds, () => ledger.missing(n));
      await channel.drained(options.stallSeconds * 1000);
      const drainedAt = performance.now();
      const fetchesAfter = await channel.fetches?.();
      const fetches = fetchesBefore && fetchesAfter ? fetchesBetween(fetchesBefore, fetchesAfter) : undefined;
      const drained = await bytes();
      checkForeign(ledger);
      const perEvent = (b: number | undefined) =>
        b === undefined || before === undefined ? undefined : (b - before) / n;
      // A tenth spanning fewer than 4 batches (or windows) measures one burst, not a rate: no figure.
      const publishTenths = tenth >= 4 * options.batch;
      const drainTenths = tenth >= 4 * options.window;
      const firstTenth = progress.find((p) => p.count >= tenth);
      const lastTenth = progress.findLast((p) => p.count <= n - tenth);
      return {
        publish: perSecond(n, t0, publishedAt),
        publishFirst:
          publishTenths && firstTenth ? perSecond(firstTenth.count, t0, firstTenth.at) : undefined,
        publishLast:
          publishTenths && lastTenth ? perSecond(n - lastTenth.count, lastTenth.at, publishedAt) : undefined,
        pendingBytes: perEvent(pending),
        drain: perSecond(n, drainStart, drainedAt),
        drainFirst: drainTenths ? perSecond(tenth, drainStart, ledger.arrivalOf(tenth)) : undefined,
        drainLast: drainTenths
          ? perSecond(tenth, ledger.arrivalOf(n - tenth), ledger.arrivalOf(n))
          : undefined,
        fetchMs: fetches?.count ? (1000 * fetches.seconds) / fetches.count : undefined,
        slowFetches: fetches?.count ? (100 * fetches.slow) / fetches.count : undefined,
        drainedBytes: perEvent(drained),
        duplicates: ledger.duplicates,
      };
    } finally {
      await cleanUp(consumers, channel, log);
    }
  },
};
