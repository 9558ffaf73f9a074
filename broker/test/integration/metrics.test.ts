// /metrics and /healthz on a real broker: the series move as events flow.
import { beforeAll, describe, expect, it } from "vitest";
import { useTestBroker } from "../support/broker.ts";
import { StreamProbe } from "../support/stream-probe.ts";
import { until } from "../support/until.ts";

const t = useTestBroker();

beforeAll(async () => {});

async function scrape(): Promise<string> {
  const response = await fetch(`http://${t.mesh.broker.metricsAddress}/metrics`);
  expect(response.status).toBe(200);
  return response.text();
}

function value(text: string, series: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

describe("metrics", () => {
  it("counts published, delivered, redelivered and settled events and connected consumers", async () => {
    await t.mesh.client.createTopic("metered");
    await t.mesh.client.createSubscription("metered.sub", "metered");
    await t.mesh.client.publish(
      "metered",
      Array.from({ length: 10 }, (_, i) => ({ id: `m${i}`, source: "s", type: "t" })),
    );
    // A duplicate is not counted again.
    await t.mesh.client.publish("metered", [{ id: "m0", source: "s", type: "t" }]);
    let text = await scrape();
    expect(value(text, 'pgmesh_events_published_total{topic="metered"}')).toBe(10);
    expect(value(text, 'pgmesh_publish_duration_seconds_count{topic="metered"}')).toBe(2);

    const probe = await StreamProbe.open(t.mesh.client, "metered.sub");
    const deliveries = await probe.waitForDeliveries(10);
    text = await scrape();
    expect(value(text, 'pgmesh_consumers_connected{subscription="metered.sub"}')).toBe(1);
    expect(value(text, 'pgmesh_deliveries_total{subscription="metered.sub"}')).toBe(10);
    // The stream opened after the publish, so its deliveries came by a fetch, which was timed.
    expect(
      value(text, 'pgmesh_fetch_duration_seconds_count{subscription="metered.sub"}'),
    ).toBeGreaterThanOrEqual(1);

    probe.nack([deliveries[0]?.ackId ?? ""]);
    await probe.waitForDeliveries(11);
    const rest = probe.deliveries.slice(1).map((d) => d.ackId);
    await probe.ackAndWait([...rest, "bogus"]);
    text = await scrape();
    expect(value(text, 'pgmesh_redeliveries_total{subscription="metered.sub"}')).toBe(1);
    expect(value(text, 'pgmesh_settles_total{subscription="metered.sub",result="nacked"}')).toBe(1);
    expect(value(text, 'pgmesh_settles_total{subscription="metered.sub",result="acked"}')).toBe(10);
    expect(value(text, 'pgmesh_settles_total{subscription="metered.sub",result="unknown"}')).toBe(1);
    expect(text).toContain("process_cpu_seconds_total");

    await probe.close();
    text = await scrape();
    expect(value(text, 'pgmesh_consumers_connected{subscription="metered.sub"}')).toBe(0);
  });

  it("reports backlog, in flight, dead-letter depth, publish-to-ack latency and gRPC calls", async () => {
    await t.mesh.client.createTopic("gauged");
    await t.mesh.client.createSubscription("gauged.sub", "gauged");
    await t.mesh.client.publish(
      "gauged",
      Array.from({ length: 4 }, (_, i) => ({ id: `g${i}`, source: "s", type: "t" })),
    );
    const backlogSeries = 'pgmesh_backlog{subscription="gauged.sub"}';
    await until(async () => value(await scrape(), backlogSeries) === 4, "backlog 4");
    // Not leased yet: all four are after the cursor, and the oldest is at least as old as the publish.
    const metrics = await scrape();
    expect(value(metrics, 'pgmesh_cursor_lag{subscription="gauged.sub"}')).toBe(4);
    expect(value(metrics, 'pgmesh_cursor_lag_age_seconds{subscription="gauged.sub"}')).toBeGreaterThanOrEqual(
      0,
    );
    const probe = await StreamProbe.open(t.mesh.client, "gauged.sub", 4);
    const deliveries = await probe.waitForDeliveries(4);
    await until(
      async () => value(await scrape(), 'pgmesh_cursor_lag{subscription="gauged.sub"}') === 0,
      "the cursor at the topic's head once leased",
    );
    await until(
      async () => value(await scrape(), 'pgmesh_in_flight{subscription="gauged.sub"}') === 4,
      "in flight 4",
    );
    const before = await scrape();
    expect(value(before, backlogSeries)).toBe(0);
    expect(value(before, 'pgmesh_oldest_unacked_age_seconds{subscription="gauged.sub"}')).toBeGreaterThan(0);
    // One dead letter: depth +1 and a dead_lettered count; three acks: three latency observations.
    await probe.settleAndWait(() => probe.reject([deliveries[0]?.ackId ?? ""], "bad"), 1);
    await probe.ackAndWait(deliveries.slice(1).map((d) => d.ackId));
    // The gauges come from the database every refresh: one taken between the reject's commit and the
    // acks' shows the dead letter with the acked three still in flight. Wait for a snapshot after both.
    let after = "";
    await until(async () => {
      after = await scrape();
      return (
        value(after, 'pgmesh_dead_letters{subscription="gauged.sub"}') === 1 &&
        value(after, 'pgmesh_in_flight{subscription="gauged.sub"}') === 0
      );
    }, "depth 1 and nothing in flight");
    expect(value(after, 'pgmesh_dead_lettered_total{subscription="gauged.sub",reason="rejected"}')).toBe(1);
    expect(value(after, 'pgmesh_publish_to_ack_seconds_count{subscription="gauged.sub"}')).toBe(3);
    expect(value(after, 'pgmesh_in_flight{subscription="gauged.sub"}')).toBe(0);
    expect(value(after, 'pgmesh_grpc_requests_total{method="Publish",code="OK"}')).toBeGreaterThanOrEqual(1);
    await t.mesh.client.getTopic("missing").catch(() => {});
    expect(value(await scrape(), 'pgmesh_grpc_requests_total{method="GetTopic",code="NOT_FOUND"}')).toBe(1);
    expect(after).toMatch(/pgmesh_postgres_connections\{application="pgmesh-broker",state="\w+"\} \d+/);
    await probe.close();
    expect(
      value(await scrape(), 'pgmesh_grpc_requests_total{method="Subscribe",code="OK"}'),
    ).toBeGreaterThanOrEqual(1);
  });

  it("answers /healthz with 200 while serving and 404 with a hint elsewhere", async () => {
    const health = await fetch(`http://${t.mesh.broker.metricsAddress}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.text()).toBe("ok\n");
    const ready = await fetch(`http://${t.mesh.broker.metricsAddress}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.text()).toBe("ready\n");
    const other = await fetch(`http://${t.mesh.broker.metricsAddress}/nope`);
    expect(other.status).toBe(404);
  });
});
