// /metrics and /healthz on a real broker: the series move as events flow.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestBroker, type TestBroker } from "../support/broker.ts";
import { createTestDatabase, type TestDatabase } from "../support/database.ts";
import { StreamProbe } from "../support/stream-probe.ts";

let db: TestDatabase;
let mesh: TestBroker;

beforeAll(async () => {
  db = await createTestDatabase();
  mesh = await startTestBroker(db.url);
});

afterAll(async () => {
  await mesh?.stop();
  await db?.drop();
});

async function scrape(): Promise<string> {
  const response = await fetch(`http://${mesh.broker.metricsAddress}/metrics`);
  expect(response.status).toBe(200);
  return response.text();
}

function value(text: string, series: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

describe("metrics", () => {
  it("counts published, delivered, redelivered and settled events and connected consumers", async () => {
    await mesh.client.createTopic("metered");
    await mesh.client.createSubscription("metered.sub", "metered");
    await mesh.client.publish(
      "metered",
      Array.from({ length: 10 }, (_, i) => ({ id: `m${i}`, source: "s", type: "t" })),
    );
    // A duplicate is not counted again.
    await mesh.client.publish("metered", [{ id: "m0", source: "s", type: "t" }]);
    let text = await scrape();
    expect(value(text, 'pgmesh_events_published_total{topic="metered"}')).toBe(10);
    expect(value(text, 'pgmesh_publish_duration_seconds_count{topic="metered"}')).toBe(2);

    const probe = await StreamProbe.open(mesh.client, "metered.sub");
    const deliveries = await probe.waitForDeliveries(10);
    text = await scrape();
    expect(value(text, 'pgmesh_consumers_connected{subscription="metered.sub"}')).toBe(1);
    expect(value(text, 'pgmesh_deliveries_total{subscription="metered.sub"}')).toBe(10);

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

  it("answers /healthz with 200 while serving and 404 with a hint elsewhere", async () => {
    const health = await fetch(`http://${mesh.broker.metricsAddress}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.text()).toBe("ok\n");
    const other = await fetch(`http://${mesh.broker.metricsAddress}/nope`);
    expect(other.status).toBe(404);
  });
});
