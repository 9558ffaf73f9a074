// Refreshes the database-backed gauges on a timer instead of per scrape: one grouped query over
// the live deliveries, one over open dead letters and one over pg_stat_activity, whatever the
// number of subscriptions or scrapers. Subscriptions that disappear drop out of the series.
import { EMPTY_SNAPSHOT, type OverviewSnapshot } from "../delivery/overview.ts";
import type { BrokerMetrics } from "./registry.ts";

export interface GaugeSource {
  subscriptionGauges(): Promise<
    {
      subscription: string;
      topic: string;
      backlog: number;
      cursorLag: number;
      cursorLagAgeSeconds: number;
      inFlight: number;
      oldestAgeSeconds: number;
      deadLetters: number;
    }[]
  >;
  connections(): Promise<{ application: string; state: string; count: number }[]>;
  /** The topics, for the console's overview. */
  topics(): Promise<{ name: string; retentionSeconds: number }[]>;
}

export class GaugeRefresher {
  private timer: NodeJS.Timeout | undefined;
  private refreshing: Promise<void> | undefined;
  /** What the last refresh read, for the console's overview (delivery/overview.ts). */
  snapshot: OverviewSnapshot = EMPTY_SNAPSHOT;

  constructor(
    private readonly metrics: BrokerMetrics,
    private readonly source: GaugeSource,
    private readonly onError: (error: unknown) => void,
  ) {}

  start(intervalMs: number): void {
    void this.refresh();
    this.timer = setInterval(() => void this.refresh(), intervalMs);
    this.timer.unref();
  }

  stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    return this.refreshing ?? Promise.resolve();
  }

  refresh(): Promise<void> {
    this.refreshing ??= this.load().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private async load(): Promise<void> {
    const started = performance.now();
    try {
      const [rows, connections, topics] = await Promise.all([
        this.source.subscriptionGauges(),
        this.source.connections(),
        this.source.topics(),
      ]);
      this.snapshot = { refreshedAt: new Date(), topics, subscriptions: rows };
      const m = this.metrics;
      for (const gauge of [
        m.backlog,
        m.cursorLag,
        m.cursorLagAge,
        m.inFlight,
        m.oldestUnackedAge,
        m.deadLetters,
        m.postgresConnections,
      ])
        gauge.reset();
      for (const row of rows) {
        const labels = { subscription: row.subscription };
        m.backlog.set(labels, row.backlog);
        m.cursorLag.set(labels, row.cursorLag);
        m.cursorLagAge.set(labels, row.cursorLagAgeSeconds);
        m.inFlight.set(labels, row.inFlight);
        m.oldestUnackedAge.set(labels, row.oldestAgeSeconds);
        m.deadLetters.set(labels, row.deadLetters);
      }
      for (const c of connections)
        m.postgresConnections.set({ application: c.application, state: c.state }, c.count);
      m.gaugesRefreshSeconds.set((performance.now() - started) / 1000);
    } catch (error) {
      this.onError(error);
    }
  }
}
