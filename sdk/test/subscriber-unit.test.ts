// The subscriber's own logic over a fake stream and a fake clock, no broker: its lifecycle, the
// heartbeat watch, ack batching and draining. sdk.test.ts runs it against a real broker.
import { EventEmitter } from "node:events";
import { connectivityState, Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { AckBatcher } from "../src/ack-batcher.ts";
import { Event } from "../src/gen/pgmesh/v1/event.ts";
import type { SubscribeRequest, SubscribeResponse } from "../src/gen/pgmesh/v1/subscriber.ts";
import { HeartbeatMonitor } from "../src/heartbeat-monitor.ts";
import type { Dispatch } from "../src/received-event.ts";
import { type SubscribeCall, type SubscribeOptions, Subscriber } from "../src/subscriber.ts";
import { checkTransition, IllegalTransition } from "../src/subscriber-state.ts";

class FakeCall extends EventEmitter implements SubscribeCall {
  readonly written: SubscribeRequest["request"][] = [];
  ended = false;
  cancelled = false;
  /** Whether the fake broker ends the stream when the subscriber does. */
  answersEnd = true;

  write(message: SubscribeRequest): boolean {
    this.written.push(message.request);
    return true;
  }
  end(): void {
    this.ended = true;
    if (this.answersEnd) queueMicrotask(() => this.emit("end"));
  }
  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.fail(status.CANCELLED, "Cancelled on client");
  }

  receive(response: SubscribeResponse["response"]): void {
    this.emit("data", { response });
  }
  opened(heartbeatMs: number): void {
    this.receive({
      $case: "opened",
      value: {
        subscription: "s",
        topic: "t",
        maxOutstandingMessages: 10,
        ackDeadline: { seconds: 60, nanos: 0 },
        heartbeatInterval: { seconds: Math.floor(heartbeatMs / 1000), nanos: (heartbeatMs % 1000) * 1e6 },
        maxOutstandingBytes: 0,
        maxMessageBytes: 4_000_000,
      },
    });
  }
  heartbeat(): void {
    this.receive({ $case: "heartbeat", value: { time: new Date() } });
  }
  deliver(...ids: string[]): void {
    const deliveries = ids.map((id) => ({
      ackId: `ack-${id}`,
      deliveryAttempt: 1,
      event: Event.fromPartial({ id, source: "test", type: "t" }),
    }));
    this.receive({ $case: "deliveries", value: { deliveries } });
  }
  fail(code: status, details: string): void {
    const error = Object.assign(new Error(`${code} ${details}`), { code, details, metadata: new Metadata() });
    this.emit("error", error as ServiceError);
  }
  /** What was written of one kind, in order. */
  sent<K extends NonNullable<SubscribeRequest["request"]>["$case"]>(kind: K) {
    return this.written.filter((r) => r?.$case === kind) as Extract<
      SubscribeRequest["request"],
      { $case: K }
    >[];
  }
}

class FakeClient {
  readonly calls: FakeCall[] = [];
  subscribe(_metadata: Metadata): FakeCall {
    const call = new FakeCall();
    this.calls.push(call);
    return call;
  }
  getChannel() {
    return { getConnectivityState: () => connectivityState.READY };
  }
  get last(): FakeCall {
    const call = this.calls.at(-1);
    if (!call) throw new Error("no stream started");
    return call;
  }
}

function subscriber(dispatch: Dispatch = () => {}, options: SubscribeOptions = {}) {
  const client = new FakeClient();
  const errors: unknown[] = [];
  const sub = new Subscriber(client, "s", dispatch, { onError: (e) => errors.push(e), ...options });
  return { client, sub, errors };
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("lifecycle", () => {
  it("connects, opens on `opened`, and resolves ready", async () => {
    const { client, sub } = subscriber();
    expect(sub.lifecycle).toBe("connecting");
    expect(client.last.written[0]).toMatchObject({ $case: "open", value: { subscription: "s" } });
    client.last.opened(15_000);
    await expect(sub.ready).resolves.toBeUndefined();
    expect(sub.lifecycle).toBe("open");
    await sub.close();
  });

  it("backs off when the stream breaks and opens a new one", async () => {
    const { client, sub, errors } = subscriber(() => {}, { reconnectInitialMs: 100 });
    client.last.opened(15_000);
    client.last.fail(status.UNAVAILABLE, "connection reset");
    expect(sub.lifecycle).toBe("backoff");
    expect(errors).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(100);
    expect(client.calls).toHaveLength(2);
    expect(sub.lifecycle).toBe("connecting");
    client.last.opened(15_000);
    expect(sub.lifecycle).toBe("open");
    await sub.close();
  });

  it("stops for good on an error reconnecting cannot fix", async () => {
    const { client, sub } = subscriber();
    client.last.fail(status.NOT_FOUND, "subscription not found");
    expect(sub.lifecycle).toBe("closed");
    await expect(sub.ready).rejects.toMatchObject({ code: status.NOT_FOUND });
    await expect(sub.done).rejects.toMatchObject({ code: status.NOT_FOUND });
    await vi.advanceTimersByTimeAsync(5000);
    expect(client.calls).toHaveLength(1);
  });

  it("cuts a stream still connecting on close, and rejects ready", async () => {
    const { client, sub } = subscriber();
    await sub.close();
    expect(client.last.cancelled).toBe(true);
    expect(sub.lifecycle).toBe("closed");
    await expect(sub.ready).rejects.toThrow("closed before its stream opened");
  });

  it("closing while backing off starts no new stream", async () => {
    const { client, sub } = subscriber();
    client.last.opened(15_000);
    client.last.fail(status.UNAVAILABLE, "gone");
    await sub.close();
    await vi.advanceTimersByTimeAsync(5000);
    expect(client.calls).toHaveLength(1);
    expect(sub.lifecycle).toBe("closed");
  });

  it("checks every move against the table", () => {
    expect(() => checkTransition("closed", "open")).toThrow(IllegalTransition);
    expect(() => checkTransition("backoff", "open")).toThrow("cannot go from backoff to open");
    expect(() => checkTransition("draining", "connecting")).toThrow(IllegalTransition);
    expect(() => checkTransition("open", "backoff")).not.toThrow();
  });
});

describe("heartbeats", () => {
  it("keeps a quiet stream that the broker's heartbeats show alive", async () => {
    const { client, sub, errors } = subscriber();
    client.last.opened(1000);
    for (let i = 0; i < 20; i++) {
      await vi.advanceTimersByTimeAsync(1000);
      client.last.heartbeat();
    }
    expect(client.calls).toHaveLength(1);
    expect(sub.lifecycle).toBe("open");
    expect(errors).toEqual([]);
    await sub.close();
  });

  it("breaks a stream silent for maxMissedHeartbeats intervals and reconnects", async () => {
    const { client, sub, errors } = subscriber(() => {}, { maxMissedHeartbeats: 3 });
    const first = client.last;
    first.opened(1000);
    await vi.advanceTimersByTimeAsync(2999);
    expect(sub.lifecycle).toBe("open");
    await vi.advanceTimersByTimeAsync(1);
    expect(first.cancelled).toBe(true);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ code: status.UNAVAILABLE });
    expect(String(errors[0])).toContain("no message from the broker for 3.0 s");
    await vi.advanceTimersByTimeAsync(1000);
    expect(client.calls).toHaveLength(2);
    client.last.opened(1000);
    expect(sub.lifecycle).toBe("open");
    await sub.close();
  });

  it("counts any message as a beat", async () => {
    const { client, sub } = subscriber();
    client.last.opened(1000);
    for (let i = 0; i < 10; i++) {
      await vi.advanceTimersByTimeAsync(900);
      client.last.receive({ $case: "ackResults", value: { results: [] } });
    }
    expect(client.calls).toHaveLength(1);
    await sub.close();
  });

  it("can be turned off", async () => {
    const { client, sub } = subscriber(() => {}, { maxMissedHeartbeats: 0 });
    client.last.opened(1000);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(client.calls).toHaveLength(1);
    expect(sub.lifecycle).toBe("open");
    await sub.close();
  });

  it("monitor: reports once after maxMissed silent intervals, never while beats come", () => {
    const dead: number[] = [];
    const monitor = new HeartbeatMonitor(100, 2, (missed) => dead.push(missed));
    for (let i = 0; i < 10; i++) {
      vi.advanceTimersByTime(100);
      monitor.beat();
    }
    expect(dead).toEqual([]);
    vi.advanceTimersByTime(300);
    expect(dead).toEqual([2]);
    vi.advanceTimersByTime(1000);
    expect(dead).toEqual([2]);
  });
});

describe("acks", () => {
  it("sends the acks of one event-loop turn in one message", async () => {
    const { client, sub } = subscriber();
    client.last.opened(15_000);
    client.last.deliver("a", "b", "c");
    await vi.advanceTimersByTimeAsync(0);
    expect(client.last.sent("ack")).toEqual([
      { $case: "ack", value: { ackIds: ["ack-a", "ack-b", "ack-c"] } },
    ]);
    await sub.close();
  });

  it("does not send a broken stream's acks on the next stream", async () => {
    let finish!: () => void;
    const running = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const { client, sub } = subscriber(() => running);
    const first = client.last;
    first.opened(15_000);
    first.deliver("a");
    first.fail(status.UNAVAILABLE, "gone");
    await vi.advanceTimersByTimeAsync(200);
    const second = client.last;
    expect(second).not.toBe(first);
    finish();
    await vi.advanceTimersByTimeAsync(0);
    expect(first.sent("ack")).toEqual([]);
    expect(second.sent("ack")).toEqual([]);
    await sub.close();
  });

  it("batcher: flushes on demand, drops what it holds when discarded", () => {
    const sent: string[][] = [];
    const batcher = new AckBatcher((ids) => sent.push(ids));
    batcher.add("1");
    batcher.add("2");
    batcher.flush();
    batcher.add("3");
    batcher.discard();
    batcher.add("4");
    vi.runAllTimers();
    expect(sent).toEqual([["1", "2"]]);
  });
});

describe("draining", () => {
  it("pauses the flow, lets the running handler ack, then ends the stream", async () => {
    let finish!: () => void;
    const running = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const { client, sub } = subscriber(() => running, { closeTimeoutMs: 5000 });
    const call = client.last;
    call.opened(15_000);
    call.deliver("a");
    await vi.advanceTimersByTimeAsync(0);
    const closed = sub.close();
    expect(sub.lifecycle).toBe("draining");
    expect(call.sent("flow")).toEqual([{ $case: "flow", value: { maxOutstandingMessages: 0 } }]);
    // A delivery that arrives while draining is left to go back.
    call.deliver("b");
    finish();
    await vi.advanceTimersByTimeAsync(0);
    expect(call.sent("ack")).toEqual([{ $case: "ack", value: { ackIds: ["ack-a"] } }]);
    expect(call.ended).toBe(true);
    await closed;
    expect(sub.lifecycle).toBe("closed");
    await expect(sub.done).resolves.toBeUndefined();
  });

  it("cuts the stream when the handlers outlast the close timeout", async () => {
    const { client, sub } = subscriber(() => new Promise(() => {}), { closeTimeoutMs: 1000 });
    client.last.answersEnd = false;
    client.last.opened(15_000);
    client.last.deliver("a");
    await vi.advanceTimersByTimeAsync(0);
    const closed = sub.close();
    await vi.advanceTimersByTimeAsync(1000);
    // The stream's end, unanswered, gets what is left of the same deadline: nothing.
    await vi.advanceTimersByTimeAsync(1);
    await closed;
    expect(client.last.cancelled).toBe(true);
    expect(client.last.sent("ack")).toEqual([]);
    expect(sub.lifecycle).toBe("closed");
    expect(vi.getTimerCount()).toBe(0);
  });
});
