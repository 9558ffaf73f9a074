// The publish coalescer's own logic, with a fake send: when a call goes out at once and when it
// waits, each call's results, the split at the broker's limits, the isolation of a failed shared
// request, and close(). The real-broker side is in publish-coalescing.test.ts.
import { Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { Event } from "@pgmesh/proto/pgmesh/v1/event";
import { PublishRequest, type PublishResult } from "@pgmesh/proto/pgmesh/v1/publisher";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { PublishCoalescer, requestEntryBound } from "../src/publish-coalescer.ts";

interface Sent {
  topic: string;
  ids: string[];
  resolve: () => void;
  reject: (error: unknown) => void;
}

/** A send that records each request and settles it when the test says so. */
function fakeSend() {
  const sent: Sent[] = [];
  const send = (topic: string, events: Event[]) =>
    new Promise<PublishResult[]>((resolve, reject) => {
      const ids = events.map((e) => e.id);
      sent.push({
        topic,
        ids,
        resolve: () => resolve(ids.map((id) => ({ id, duplicate: false }))),
        reject,
      });
    });
  return { sent, send };
}

/** A send that answers at once: fails with `error(events)` when it returns one, else succeeds. */
function answeringSend(error: (events: Event[]) => unknown) {
  const sent: string[][] = [];
  const send = async (_topic: string, events: Event[]) => {
    sent.push(events.map((e) => e.id));
    await Promise.resolve();
    const failure = error(events);
    if (failure) throw failure;
    return events.map((e) => ({ id: e.id, duplicate: false }));
  };
  return { sent, send };
}

const events = (prefix: string, n: number, extra: Partial<Event> = {}) =>
  Array.from({ length: n }, (_, i) => Event.fromPartial({ id: `${prefix}${i}`, source: "s", ...extra }));
const ids = (results: PublishResult[]) => results.map((r) => r.id);
const turn = () => new Promise((resolve) => setImmediate(resolve));
const grpcError = (code: status, details: string): ServiceError =>
  Object.assign(new Error(`${code} ${status[code]}: ${details}`), {
    code,
    details,
    metadata: new Metadata(),
  });

describe("publish coalescer", () => {
  it("sends a call at once while the topic has a free slot; calls made meanwhile go as one request", async () => {
    const { sent, send } = fakeSend();
    const coalescer = new PublishCoalescer(send, { maxInFlight: 2 });
    const a = coalescer.publish("t", events("a", 1));
    await turn();
    expect(sent.map((s) => s.ids)).toEqual([["a0"]]);
    const b = coalescer.publish("t", events("b", 2));
    await turn();
    expect(sent.map((s) => s.ids)).toEqual([["a0"], ["b0", "b1"]]);
    // Both slots taken: these wait, then leave together, each call contiguous and in order.
    const c = coalescer.publish("t", events("c", 3));
    const d = coalescer.publish("t", events("d", 1));
    const e = coalescer.publish("t", events("e", 2));
    await turn();
    expect(sent).toHaveLength(2);
    expect(coalescer.pending.get("t")).toEqual({ waiting: 3, inFlight: 2 });
    sent[1]?.resolve();
    expect(ids(await b)).toEqual(["b0", "b1"]);
    await turn();
    expect(sent.map((s) => s.ids)[2]).toEqual(["c0", "c1", "c2", "d0", "e0", "e1"]);
    sent[2]?.resolve();
    sent[0]?.resolve();
    expect(ids(await a)).toEqual(["a0"]);
    expect(ids(await c)).toEqual(["c0", "c1", "c2"]);
    expect(ids(await d)).toEqual(["d0"]);
    expect(ids(await e)).toEqual(["e0", "e1"]);
    await turn();
    expect(coalescer.pending.size).toBe(0);
  });

  it("starts calls made in one go together, and never mixes topics", async () => {
    const { sent, send } = fakeSend();
    const coalescer = new PublishCoalescer(send);
    const calls = [
      coalescer.publish("x", events("x", 1)),
      coalescer.publish("y", events("y", 1)),
      coalescer.publish("x", events("z", 2)),
    ];
    await turn();
    expect(sent.map((s) => [s.topic, s.ids])).toEqual([
      ["x", ["x0", "z0", "z1"]],
      ["y", ["y0"]],
    ]);
    for (const s of sent) s.resolve();
    expect((await Promise.all(calls)).map(ids)).toEqual([["x0"], ["y0"], ["z0", "z1"]]);
  });

  it("splits what waits at maxEvents and maxBytes, never splitting a call, oldest first", async () => {
    const { sent, send } = fakeSend();
    const coalescer = new PublishCoalescer(send, { maxInFlight: 1, maxBytes: 20_000 });
    const first = coalescer.publish("t", events("f", 1));
    await turn();
    const big = (prefix: string) => events(prefix, 1, { data: { typeUrl: "x", value: Buffer.alloc(7_000) } });
    const calls = [
      coalescer.publish("t", events("a", 400)),
      coalescer.publish("t", events("b", 400)),
      coalescer.publish("t", events("c", 300)), // 1,100 events with a and b: the next request
      coalescer.publish("t", events("d", 1)),
      coalescer.publish("t", events("e", 1200)), // more than the broker takes: alone, as it was
      coalescer.publish("t", big("g")),
      coalescer.publish("t", big("h")),
      coalescer.publish("t", big("i")), // over 20 kB with g and h: the next request
    ];
    const counts: number[][] = [];
    sent[0]?.resolve();
    await first;
    for (let i = 1; i <= 5; i++) {
      await turn();
      expect(sent).toHaveLength(i + 1); // one in flight at a time
      const request = sent[i] as Sent;
      counts.push(
        [...new Set(request.ids.map((id) => id[0]))].map(
          (p) => request.ids.filter((id) => id[0] === p).length,
        ),
      );
      request.resolve();
    }
    expect(counts).toEqual([[400, 400], [300, 1], [1200], [1, 1], [1]]);
    const results = await Promise.all(calls);
    expect(results.map((r) => r.length)).toEqual([400, 400, 300, 1, 1200, 1, 1, 1]);
    expect(ids(results[2] as PublishResult[])).toEqual(events("c", 300).map((e) => e.id));
  });

  it("sends each call of a shared request again alone after a non-retryable error: only the culprit fails", async () => {
    const bad = (evs: Event[]) => {
      const index = evs.findIndex((e) => e.type === "bad");
      return index < 0 ? undefined : grpcError(status.INVALID_ARGUMENT, `events[${index}].type is bad`);
    };
    const { sent, send } = answeringSend(bad);
    const coalescer = new PublishCoalescer(send);
    const [a, b, c] = await Promise.allSettled([
      coalescer.publish("t", events("a", 2)),
      coalescer.publish("t", [...events("b", 1), Event.fromPartial({ id: "b1", type: "bad" })]),
      coalescer.publish("t", events("c", 1)),
    ]);
    expect(sent).toEqual([["a0", "a1", "b0", "b1", "c0"], ["a0", "a1"], ["b0", "b1"], ["c0"]]);
    expect(a).toEqual({
      status: "fulfilled",
      value: [expect.objectContaining({ id: "a0" }), expect.objectContaining({ id: "a1" })],
    });
    expect(c).toEqual({ status: "fulfilled", value: [expect.objectContaining({ id: "c0" })] });
    // Its own error, about its own events (index 1 of its request, not 3 of the shared one).
    expect(b).toMatchObject({
      status: "rejected",
      reason: { code: status.INVALID_ARGUMENT, details: "events[1].type is bad" },
    });
  });

  it("fails every call of a request that failed with a retryable code, and a lone call at once", async () => {
    const unavailable = grpcError(status.UNAVAILABLE, "down");
    const down = answeringSend(() => unavailable);
    const coalescer = new PublishCoalescer(down.send);
    const settled = await Promise.allSettled([
      coalescer.publish("t", events("a", 1)),
      coalescer.publish("t", events("b", 1)),
    ]);
    // The client's retries ran inside send already: no call alone would have fared better.
    expect(settled.map((s) => s.status === "rejected" && s.reason)).toEqual([unavailable, unavailable]);
    expect(down.sent).toEqual([["a0", "b0"]]);

    const notFound = grpcError(status.NOT_FOUND, "no topic");
    const missing = answeringSend(() => notFound);
    const alone = new PublishCoalescer(missing.send);
    await expect(alone.publish("t", events("a", 1))).rejects.toBe(notFound);
    expect(missing.sent).toEqual([["a0"]]);
  });

  it("refuses results that do not match the events, and survives a send that throws", async () => {
    const short = new PublishCoalescer(async () => [{ id: "x", duplicate: false }]);
    await expect(short.publish("t", events("a", 2))).rejects.toThrow("1 results for 2 events");
    const throwing = new PublishCoalescer(() => {
      throw new Error("boom");
    });
    const settled = await Promise.allSettled([
      throwing.publish("t", events("a", 1)),
      throwing.publish("t", events("b", 1)),
    ]);
    expect(settled.map((s) => s.status)).toEqual(["rejected", "rejected"]);
  });

  it("close() sends what waits at once, whatever is in flight, and later calls directly", async () => {
    const { sent, send } = fakeSend();
    const coalescer = new PublishCoalescer(send, { maxInFlight: 1 });
    const first = coalescer.publish("t", events("a", 1));
    await turn();
    const waiting = [coalescer.publish("t", events("b", 1)), coalescer.publish("t", events("c", 1))];
    await turn();
    expect(sent).toHaveLength(1);
    coalescer.close();
    expect(sent.map((s) => s.ids)).toEqual([["a0"], ["b0", "c0"]]);
    const later = coalescer.publish("t", events("d", 1));
    expect(sent.map((s) => s.ids)[2]).toEqual(["d0"]);
    sent[1]?.reject(new Error("Channel has been shut down"));
    for (const s of [sent[0], sent[2]]) s?.resolve();
    expect(ids(await first)).toEqual(["a0"]);
    expect(ids(await later)).toEqual(["d0"]);
    // The shared request failed (not retryably): each call was sent again on its own.
    await turn();
    expect(sent.map((s) => s.ids).slice(3)).toEqual([["b0"], ["c0"]]);
    sent[3]?.resolve();
    sent[4]?.reject(new Error("Channel has been shut down"));
    const settled = await Promise.allSettled(waiting);
    expect(settled.map((s) => s.status)).toEqual(["fulfilled", "rejected"]);
  });

  it("bounds an event's bytes in a PublishRequest from above", () => {
    const text = fc.string({ unit: "binary", maxLength: 40 });
    const event = fc.record({
      id: text,
      source: text,
      type: text,
      subject: text,
      orderingKey: text,
      topic: text,
      time: fc.option(fc.date({ noInvalidDate: true }), { nil: undefined }),
      deliverAfter: fc.option(fc.date({ noInvalidDate: true }), { nil: undefined }),
      attributes: fc.dictionary(text, text, { maxKeys: 5 }),
      data: fc.option(
        fc.record({ typeUrl: text, value: fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)) }),
        {
          nil: undefined,
        },
      ),
    });
    fc.assert(
      fc.property(fc.array(event, { maxLength: 5 }), (partials) => {
        const evs = partials.map((p) => Event.fromPartial(p));
        const exact = PublishRequest.encode({ topic: "t", events: evs }).finish().length;
        const bound = evs.reduce((sum, e) => sum + requestEntryBound(e), 7);
        expect(bound).toBeGreaterThanOrEqual(exact);
      }),
    );
  });
});
