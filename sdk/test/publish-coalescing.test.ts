// Publish coalescing against a real broker: concurrent publish() calls on one client share Publish
// requests (counted by the broker's own metrics), every caller still gets its own results and
// hooks, and one caller's invalid event fails only that caller. The coalescer's logic on its own
// is in publish-coalescer.test.ts.
import { status } from "@grpc/grpc-js";
import { connect, type PgmeshClient, type PublishOutcome } from "@pgmesh/sdk";
import { afterAll, describe, expect, it } from "vitest";
import { useTestBroker } from "../../broker/test/support/broker.ts";

const t = useTestBroker();
const clients: PgmeshClient[] = [];
afterAll(() => {
  for (const c of clients) c.close();
});

/** Publish requests the broker has answered, by status code. */
async function publishRequests(): Promise<Record<string, number>> {
  const text = await (await fetch(`http://${t.mesh.broker.metricsAddress}/metrics`)).text();
  const counts: Record<string, number> = {};
  for (const line of text.split("\n")) {
    const match = /^pgmesh_grpc_requests_total\{(.*)\} (\S+)$/.exec(line);
    if (!match?.[1]?.includes('method="Publish"')) continue;
    const code = /code="([A-Z_]+)"/.exec(match[1])?.[1] ?? "?";
    counts[code] = (counts[code] ?? 0) + Number(match[2]);
  }
  return counts;
}

/** The requests answered while `run` ran, by code. */
async function requestsDuring(run: () => Promise<unknown>): Promise<Record<string, number>> {
  const before = await publishRequests();
  await run();
  const after = await publishRequests();
  return Object.fromEntries(
    Object.entries(after)
      .map(([code, n]) => [code, n - (before[code] ?? 0)] as const)
      .filter(([, n]) => n > 0),
  );
}

const twoEvents = (caller: number) => [
  { id: `c${caller}-a`, source: "s", type: "t" },
  { id: `c${caller}-b`, source: "s", type: "t" },
];

describe("publish coalescing", () => {
  it("sends 200 concurrent publish() calls in far fewer requests, each caller with its own results and hooks", async () => {
    await t.mesh.client.createTopic("coalesced");
    const outcomes: PublishOutcome[] = [];
    const client = connect(t.mesh.address, { hooks: { afterPublish: (o) => outcomes.push(o) } });
    clients.push(client);
    const callers = Array.from({ length: 200 }, (_, i) => i);
    let results: Awaited<ReturnType<PgmeshClient["publish"]>>[] = [];
    const requests = await requestsDuring(async () => {
      results = await Promise.all(callers.map((i) => client.publish("coalesced", twoEvents(i))));
    });
    expect(requests.OK).toBeLessThanOrEqual(10);
    expect(requests).toEqual({ OK: requests.OK });
    for (const i of callers) {
      expect(results[i]?.map((r) => [r.id, r.duplicate])).toEqual([
        [`c${i}-a`, false],
        [`c${i}-b`, false],
      ]);
    }
    // A hook call per caller, with that caller's events and results.
    expect(outcomes).toHaveLength(200);
    for (const o of outcomes) {
      expect(o.results?.map((r) => r.id)).toEqual(o.events.map((e) => e.id));
      expect(o.events).toHaveLength(2);
    }
    // The broker stored each event once: publishing them all again finds only duplicates.
    const again = await client.publish(
      "coalesced",
      callers.flatMap((i) => twoEvents(i)),
    );
    expect(again.every((r) => r.duplicate)).toBe(true);

    // Turned off, every call is a request of its own.
    const plain = connect(t.mesh.address, { publishCoalescing: false });
    clients.push(plain);
    const uncoalesced = await requestsDuring(() =>
      Promise.all(callers.map((i) => plain.publish("coalesced", [{ source: "s", type: `plain${i}` }]))),
    );
    expect(uncoalesced).toEqual({ OK: 200 });
  });

  it("fails only the caller with an invalid event, with its own error; the others' events are stored", async () => {
    await t.mesh.client.createTopic("isolated");
    const client = connect(t.mesh.address);
    clients.push(client);
    let settled: PromiseSettledResult<Awaited<ReturnType<PgmeshClient["publish"]>>>[] = [];
    const requests = await requestsDuring(async () => {
      settled = await Promise.allSettled(
        Array.from({ length: 50 }, (_, i) =>
          client.publish(
            "isolated",
            i === 17
              ? [
                  { id: "ok-first", source: "s", type: "t" },
                  { id: "bad", source: "", type: "t" },
                ]
              : twoEvents(i),
          ),
        ),
      );
    });
    // One shared request refused as a whole, then each caller alone: 49 stored, the culprit refused.
    expect(requests).toEqual({ INVALID_ARGUMENT: 2, OK: 49 });
    const culprit = settled[17];
    expect(culprit?.status).toBe("rejected");
    expect((culprit as PromiseRejectedResult).reason).toMatchObject({
      code: status.INVALID_ARGUMENT,
      // Index 1 of its own request (in the shared one it was event 35).
      details: expect.stringContaining("events[1].source"),
    });
    for (const [i, s] of settled.entries()) {
      if (i === 17) continue;
      expect(s.status === "fulfilled" && s.value.map((r) => [r.id, r.duplicate])).toEqual([
        [`c${i}-a`, false],
        [`c${i}-b`, false],
      ]);
    }
    // All or nothing for the culprit: its valid first event was not stored either.
    const [first] = await client.publish("isolated", [{ id: "ok-first", source: "s", type: "t" }]);
    expect(first?.duplicate).toBe(false);
  });
});
