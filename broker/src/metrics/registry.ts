// The broker's Prometheus series (prefix pgmesh_). Counters and histograms are fed by the delivery
// layer's observer hooks and the gRPC server; gauges that live in the database (backlog, in flight,
// oldest unacked age, dead letters, connections) are refreshed by gauges.ts on a timer, so a scrape
// never runs a query. Labels are topic, subscription, method, code, reason or result: bounded sets.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { SettleStatus } from "../delivery/consumer.ts";
import type { DeadLetterReason } from "../delivery/model.ts";
import type { DeliveryObserver } from "../delivery/observer.ts";
import type { TrafficCounters } from "../delivery/overview.ts";

export class BrokerMetrics implements DeliveryObserver {
  readonly registry = new Registry();
  private readonly publishedTotal: Counter<"topic">;
  private readonly publishSeconds: Histogram<"topic">;
  private readonly fetchSeconds: Histogram<"subscription">;
  private readonly deliveriesTotal: Counter<"subscription">;
  private readonly redeliveriesTotal: Counter<"subscription">;
  private readonly handedOffTotal: Counter<"subscription">;
  private readonly settlesTotal: Counter<"subscription" | "result">;
  private readonly deadLetteredTotal: Counter<"subscription" | "reason">;
  private readonly publishToAckSeconds: Histogram<"subscription">;
  private readonly consumersConnected: Gauge<"subscription">;
  private readonly grpcRequests: Counter<"method" | "code">;
  readonly backlog: Gauge<"subscription">;
  readonly cursorLag: Gauge<"subscription">;
  readonly cursorLagAge: Gauge<"subscription">;
  readonly inFlight: Gauge<"subscription">;
  readonly oldestUnackedAge: Gauge<"subscription">;
  readonly deadLetters: Gauge<"subscription">;
  readonly postgresConnections: Gauge<"application" | "state">;
  readonly gaugesRefreshSeconds: Gauge;

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    const registers = [this.registry];
    this.publishedTotal = new Counter({
      name: "pgmesh_events_published_total",
      help: "Events stored by Publish (duplicates not counted again; the outbox relay's are not counted).",
      labelNames: ["topic"],
      registers,
    });
    this.publishSeconds = new Histogram({
      name: "pgmesh_publish_duration_seconds",
      help: "Time to validate and commit one Publish batch.",
      labelNames: ["topic"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.fetchSeconds = new Histogram({
      name: "pgmesh_fetch_duration_seconds",
      help: "Time of one fetch of deliveries from a subscription's queue (a pg-boss fetch, with any wait to share its transaction).",
      labelNames: ["subscription"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.deliveriesTotal = new Counter({
      name: "pgmesh_deliveries_total",
      help: "Deliveries sent to consumer streams, first attempts and redeliveries.",
      labelNames: ["subscription"],
      registers,
    });
    this.handedOffTotal = new Counter({
      name: "pgmesh_handed_off_total",
      help: "Deliveries leased by the publish that stored their events (the publish hand-off to an idle, caught-up stream on the publishing broker); the rest of pgmesh_deliveries_total was leased from the cursor or the queue.",
      labelNames: ["subscription"],
      registers,
    });
    this.redeliveriesTotal = new Counter({
      name: "pgmesh_redeliveries_total",
      help: "Deliveries with attempt > 1.",
      labelNames: ["subscription"],
      registers,
    });
    this.settlesTotal = new Counter({
      name: "pgmesh_settles_total",
      help: "Settle results per ack id: acked, nacked, dead_lettered, extended, stale, unknown.",
      labelNames: ["subscription", "result"],
      registers,
    });
    this.deadLetteredTotal = new Counter({
      name: "pgmesh_dead_lettered_total",
      help: "Events moved to the dead-letter table, by reason (max_attempts, rejected).",
      labelNames: ["subscription", "reason"],
      registers,
    });
    this.publishToAckSeconds = new Histogram({
      name: "pgmesh_publish_to_ack_seconds",
      help: "Time from an event's publish to its ack, per acked event.",
      labelNames: ["subscription"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers,
    });
    this.consumersConnected = new Gauge({
      name: "pgmesh_consumers_connected",
      help: "Open Subscribe streams on this broker.",
      labelNames: ["subscription"],
      registers,
    });
    this.grpcRequests = new Counter({
      name: "pgmesh_grpc_requests_total",
      help: "Finished gRPC calls by method and status code.",
      labelNames: ["method", "code"],
      registers,
    });
    this.backlog = new Gauge({
      name: "pgmesh_backlog",
      help: "Deliveries waiting (events after the cursor, and jobs pending, retrying or delayed), per subscription.",
      labelNames: ["subscription"],
      registers,
    });
    this.cursorLag = new Gauge({
      name: "pgmesh_cursor_lag",
      help: "Events of the topic the subscription's cursor has not passed yet (counted up to 10,000), per subscription.",
      labelNames: ["subscription"],
      registers,
    });
    this.cursorLagAge = new Gauge({
      name: "pgmesh_cursor_lag_age_seconds",
      help: "Age of the oldest event the subscription's cursor has not passed (0 at the head), per subscription.",
      labelNames: ["subscription"],
      registers,
    });
    this.inFlight = new Gauge({
      name: "pgmesh_in_flight",
      help: "Deliveries leased to consumers and not yet settled, per subscription.",
      labelNames: ["subscription"],
      registers,
    });
    this.oldestUnackedAge = new Gauge({
      name: "pgmesh_oldest_unacked_age_seconds",
      help: "Age of the oldest delivery still pending or in flight, per subscription (0 when none).",
      labelNames: ["subscription"],
      registers,
    });
    this.deadLetters = new Gauge({
      name: "pgmesh_dead_letters",
      help: "Dead letters not yet redriven or purged (dead-letter depth), per subscription.",
      labelNames: ["subscription"],
      registers,
    });
    this.postgresConnections = new Gauge({
      name: "pgmesh_postgres_connections",
      help: "Connections to the database by pgmesh's pools (pgmesh-broker, pgmesh-pgboss) and their state.",
      labelNames: ["application", "state"],
      registers,
    });
    this.gaugesRefreshSeconds = new Gauge({
      name: "pgmesh_gauges_refresh_seconds",
      help: "How long the last refresh of the database-backed gauges took.",
      registers,
    });
  }

  /**
   * This broker's traffic since it started, by name, for the console's rates (delivery/overview.ts):
   * read from the Prometheus counters that count it, when a console asks.
   */
  async traffic(): Promise<TrafficCounters> {
    const [published, delivered, acked] = await Promise.all([
      byLabel(this.publishedTotal, "topic"),
      byLabel(this.deliveriesTotal, "subscription"),
      byLabel(this.settlesTotal, "subscription", (labels) => labels.result === "acked"),
    ]);
    return { published, delivered, acked };
  }

  published(topic: string, events: number, seconds: number): void {
    this.publishedTotal.inc({ topic }, events);
    this.publishSeconds.observe({ topic }, seconds);
  }

  delivered(subscription: string, deliveries: number, redeliveries: number): void {
    this.deliveriesTotal.inc({ subscription }, deliveries);
    if (redeliveries > 0) this.redeliveriesTotal.inc({ subscription }, redeliveries);
  }

  handedOff(subscription: string, deliveries: number): void {
    this.handedOffTotal.inc({ subscription }, deliveries);
  }

  fetched(subscription: string, seconds: number): void {
    this.fetchSeconds.observe({ subscription }, seconds);
  }

  settled(subscription: string, result: SettleStatus, count: number): void {
    this.settlesTotal.inc({ subscription, result }, count);
  }

  acked(subscription: string, secondsSincePublish: number[]): void {
    // The labelled child once per settle, not a label lookup per acked event.
    const histogram = this.publishToAckSeconds.labels({ subscription });
    for (const seconds of secondsSincePublish) histogram.observe(seconds);
  }

  deadLettered(subscription: string, reason: DeadLetterReason, count: number): void {
    this.deadLetteredTotal.inc({ subscription, reason }, count);
  }

  consumers(subscription: string, delta: 1 | -1): void {
    this.consumersConnected.inc({ subscription }, delta);
  }

  /** A finished gRPC call (server/ reports these). */
  request(method: string, code: string): void {
    this.grpcRequests.inc({ method, code });
  }
}

/** The values of a counter by one of its labels (summed over the others, filtered by `where`). */
async function byLabel<L extends string>(
  counter: Counter<L>,
  label: NoInfer<L>,
  where: (labels: Partial<Record<NoInfer<L>, string | number>>) => boolean = () => true,
): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const { labels, value } of (await counter.get()).values) {
    const name = labels[label];
    if (name === undefined || !where(labels)) continue;
    counts.set(String(name), (counts.get(String(name)) ?? 0) + value);
  }
  return counts;
}
