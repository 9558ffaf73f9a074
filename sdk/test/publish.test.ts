// Publishing from the SDK against a real broker: client-chosen time-ordered ids, retries across a
// broker outage that store the event once, deadlines and AbortSignal, and an explicit envelope.

import { status } from "@grpc/grpc-js";
import { connect, defineEvent, type MessageCodec, type PgmeshClient } from "@pgmesh/sdk";
import { validate, version } from "uuid";
import { afterAll, describe, expect, it } from "vitest";
import { startTestBroker, useTestBroker } from "../../broker/test/support/broker.ts";
import { createTestDatabase } from "../../broker/test/support/database.ts";
import { freePort } from "../../broker/test/support/free-port.ts";
import { rejection } from "../../broker/test/support/rejection.ts";
import { StreamProbe } from "../../broker/test/support/stream-probe.ts";

const t = useTestBroker();
const clients: PgmeshClient[] = [];
afterAll(() => {
  for (const c of clients) c.close();
});

/** A message whose own fields are named like envelope fields: JSON is codec enough here. */
interface Note {
  id: string;
  message: string;
}
const json: MessageCodec<Note> = {
  encode: (note) => ({ finish: () => Buffer.from(JSON.stringify(note)) }),
  decode: (bytes) => JSON.parse(Buffer.from(bytes).toString()) as Note,
};

describe("publish", () => {
  it("gives each event a time-ordered uuid v7 id before sending, so a repeat is a duplicate", async () => {
    await t.mesh.client.createTopic("ids");
    const results = await t.mesh.client.publish("ids", [
      { source: "s", type: "a" },
      { source: "s", type: "b" },
    ]);
    const ids = results.map((r) => r.id);
    for (const id of ids) {
      expect(validate(id)).toBe(true);
      expect(version(id)).toBe(7);
    }
    expect([...ids].sort()).toEqual(ids);
    // The same events again, with the ids they got: the broker has them already.
    const again = await t.mesh.client.publish("ids", [
      { id: ids[0], source: "s", type: "a" },
      { id: ids[1], source: "s", type: "b" },
    ]);
    expect(again.map((r) => r.duplicate)).toEqual([true, true]);
  });

  it("retries while the broker is down and stores the event once when it is back", async () => {
    const db = await createTestDatabase();
    const address = `127.0.0.1:${await freePort()}`;
    const env = { PGMESH_GRPC_ADDRESS: address };
    const first = await startTestBroker(db.url, env);
    await first.client.createTopic("outage");
    await first.client.createSubscription("outage.sub", "outage");
    await first.stop();

    const client = connect(address, { publishRetry: { initialBackoffMs: 50, maxBackoffMs: 200 } });
    clients.push(client);
    const published = client.publish("outage", [{ source: "s", type: "during-outage" }]);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const second = await startTestBroker(db.url, env);
    try {
      const [result] = await published;
      expect(result?.duplicate).toBe(false);
      const probe = await StreamProbe.open(second.client, "outage.sub");
      const deliveries = await probe.waitForDeliveries(1);
      expect(deliveries.map((d) => d.event?.id)).toEqual([result?.id]);
      await probe.ackAndWait(deliveries.map((d) => d.ackId));
      await probe.close();
      expect(await second.client.subscriptionStats("outage.sub")).toMatchObject({ backlog: 0, inFlight: 0 });
    } finally {
      await second.stop();
      await db.drop();
    }
  });

  it("gives up at the call's deadline, and at once when its signal aborts", async () => {
    // Nothing listens there: every attempt is UNAVAILABLE.
    const client = connect(`127.0.0.1:${await freePort()}`);
    clients.push(client);
    let started = Date.now();
    const timedOut = await rejection(client.publish("x", [{ source: "s", type: "t" }], { timeoutMs: 700 }));
    expect([status.UNAVAILABLE, status.DEADLINE_EXCEEDED]).toContain(timedOut.code);
    expect(Date.now() - started).toBeLessThan(2000);

    const controller = new AbortController();
    started = Date.now();
    const publishing = client.publish("x", [{ source: "s", type: "t" }], { signal: controller.signal });
    setTimeout(() => controller.abort(), 300);
    await expect(publishing).rejects.toBeDefined();
    expect(Date.now() - started).toBeLessThan(1500);

    const aborted = await rejection(client.createTopic("never", {}, { signal: AbortSignal.abort() }));
    expect(aborted.code).toBe(status.CANCELLED);
  });

  it("takes the message from `message` only, whatever the message's own fields are called", async () => {
    await t.mesh.client.createTopic("notes");
    await t.mesh.client.createSubscription("notes.sub", "notes");
    const NoteEvent = defineEvent("notes", "test.Note", json);
    const received: { id: string; data: Note }[] = [];
    const sub = t.mesh.client.subscribe("notes.sub", NoteEvent, (event) => {
      received.push({ id: event.id, data: event.data });
    });
    await sub.ready;
    const [batch] = await t.mesh.client.publishEvents(NoteEvent, [
      { message: { id: "inner-id", message: "inner message" }, subject: "n/1" },
    ]);
    const single = await t.mesh.client.publishEvent(NoteEvent, { id: "only-id", message: "only message" });
    const deadline = Date.now() + 10_000;
    while (received.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await sub.close();
    expect(received.sort((a, b) => a.id.localeCompare(b.id))).toEqual(
      [
        { id: batch?.id, data: { id: "inner-id", message: "inner message" } },
        { id: single.id, data: { id: "only-id", message: "only message" } },
      ].sort((a, b) => (a.id ?? "").localeCompare(b.id ?? "")),
    );
    expect(version(single.id)).toBe(7);
  });

  it("runs publish hooks and a subscriber's aroundHandler, carrying a W3C traceparent across", async () => {
    await t.mesh.client.createTopic("traced");
    await t.mesh.client.createSubscription("traced.sub", "traced");
    const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const outcomes: { topic: string; ids: string[]; error: unknown }[] = [];
    const client = connect(t.mesh.address, {
      hooks: {
        beforePublish: (_topic, events) => {
          for (const e of events) e.attributes.traceparent = traceparent;
        },
        afterPublish: (o) =>
          outcomes.push({ topic: o.topic, ids: o.results?.map((r) => r.id) ?? [], error: o.error }),
      },
    });
    clients.push(client);
    const NoteEvent = defineEvent("traced", "test.Note", json);
    const handled: { traceparent: string | undefined; outcome: string }[] = [];
    const sub = client.subscribe(
      "traced.sub",
      NoteEvent,
      (event) => {
        if (event.data.message === "fail") throw new Error("boom");
      },
      {
        aroundHandler: async (event, handle) => {
          try {
            await handle();
            handled.push({ traceparent: event.attributes.traceparent, outcome: "ok" });
          } catch (error) {
            handled.push({ traceparent: event.attributes.traceparent, outcome: (error as Error).message });
            throw error;
          }
        },
      },
    );
    await sub.ready;
    const ok = await client.publishEvent(NoteEvent, { id: "1", message: "fine" });
    await expect(client.publish("no.such.topic", [{ type: "x" }])).rejects.toMatchObject({ code: 5 });
    await client.publishEvent(NoteEvent, { id: "2", message: "fail" });
    const deadline = Date.now() + 10_000;
    while (handled.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await sub.close(100);
    expect(outcomes[0]).toEqual({ topic: "traced", ids: [ok.id], error: undefined });
    expect(outcomes[1]).toMatchObject({ topic: "no.such.topic", ids: [], error: { code: 5 } });
    expect(handled.sort((a, b) => a.outcome.localeCompare(b.outcome))).toEqual([
      { traceparent, outcome: "boom" },
      { traceparent, outcome: "ok" },
    ]);
  });
});
