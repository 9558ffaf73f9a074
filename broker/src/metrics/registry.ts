// The broker's Prometheus series (prefix pgmesh_), fed by the delivery layer's observer hooks.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { SettleStatus } from "../delivery/consumer.ts";
import type { DeliveryObserver } from "../delivery/observer.ts";

export class BrokerMetrics implements DeliveryObserver {
  readonly registry = new Registry();
  private readonly publishedTotal: Counter<"topic">;
  private readonly publishSeconds: Histogram<"topic">;
  private readonly deliveriesTotal: Counter<"subscription">;
  private readonly redeliveriesTotal: Counter<"subscription">;
  private readonly settlesTotal: Counter<"subscription" | "result">;
  private readonly consumersConnected: Gauge<"subscription">;

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    const registers = [this.registry];
    this.publishedTotal = new Counter({
      name: "pgmesh_events_published_total",
      help: "Events stored by Publish (duplicates not counted twice).",
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
    this.deliveriesTotal = new Counter({
      name: "pgmesh_deliveries_total",
      help: "Deliveries sent to consumer streams, first attempts and redeliveries.",
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
      help: "Acks and nacks by result: acked, nacked, stale, unknown.",
      labelNames: ["subscription", "result"],
      registers,
    });
    this.consumersConnected = new Gauge({
      name: "pgmesh_consumers_connected",
      help: "Open Subscribe streams on this broker.",
      labelNames: ["subscription"],
      registers,
    });
  }

  published(topic: string, events: number, seconds: number): void {
    this.publishedTotal.inc({ topic }, events);
    this.publishSeconds.observe({ topic }, seconds);
  }

  delivered(subscription: string, attempt: number): void {
    this.deliveriesTotal.inc({ subscription });
    if (attempt > 1) this.redeliveriesTotal.inc({ subscription });
  }

  settled(subscription: string, result: SettleStatus, count: number): void {
    this.settlesTotal.inc({ subscription, result }, count);
  }

  consumers(subscription: string, delta: 1 | -1): void {
    this.consumersConnected.inc({ subscription }, delta);
  }
}
