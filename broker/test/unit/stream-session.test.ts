// The stream session (server/subscriber-handler.ts) on a fake clock, over a fake gRPC call and the
// in-memory delivery port of the test kit: its open timeout, its heartbeats re-armed by every
// write, and deliveries and per-id settle results, with no broker and no database.
import { EventEmitter } from "node:events";
import {
  AckStatus,
  type SubscribeRequest,
  type SubscribeResponse,
} from "@pgmesh/sdk/gen/pgmesh/v1/subscriber";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Admin } from "../../src/delivery/admin.ts";
import { DeliveryService } from "../../src/delivery/delivery-service.ts";
import type { DeliveryObserver } from "../../src/delivery/observer.ts";
import type { EventStore } from "../../src/delivery/ports.ts";
import { SubscriberStreams } from "../../src/server/subscriber-handler.ts";
import { MemoryDeliveryQueue } from "../support/memory-delivery-queue.ts";
import { testSubscription } from "../support/subscription.ts";

/** What grpc-js hands the handler: a duplex stream; here, an emitter that records what is written. */
class FakeCall extends EventEmitter {
  readonly written: SubscribeResponse[] = [];
  error: { code?: number; details?: string } | undefined;
  constructor() {
    super();
    this.on("error", (error) => {
      this.error = error;
    });
  }
  write(response: SubscribeResponse): boolean {
    this.written.push(response);
    return true;
  }
  end(): void {}
  send(request: SubscribeRequest["request"]): void {
    this.emit("data", { request });
  }
  kinds(): string[] {
    return this.written.map((w) => w.response?.$case ?? "");
  }
}

const HEARTBEAT_MS = 1_000;
const subscription = { ...testSubscription, ackDeadlineSeconds: 30 };
const noop = () => {};
const observer = new Proxy({}, { get: () => noop }) as DeliveryObserver;

function setUp() {
  const memory = new MemoryDeliveryQueue();
  memory.addSubscription(subscription);
  const events: EventStore = {
    publish: () => Promise.reject(new Error("not used")),
    loadEvents: async () => new Map(),
  };
  const deliveries = new DeliveryService(memory, events, {
    pollIntervalMs: 60_000,
    sweepIntervalMs: 60_000,
    observer,
    loadSubscription: async () => subscription,
    onError: noop,
    accepts: () => true,
  });
  const admin = { getSubscription: async () => subscription } as unknown as Admin;
  const streams = new SubscriberStreams(
    admin,
    deliveries,
    { heartbeatIntervalMs: HEARTBEAT_MS, openTimeoutMs: 5_000, maxMessageBytes: 4 * 1024 * 1024 },
    noop,
    noop,
  );
  const call = new FakeCall();
  streams.handlers().subscribe(call as never);
  return { memory, deliveries, call };
}

const open = (call: FakeCall) =>
  call.send({
    $case: "open",
    value: {
      subscription: subscription.name,
      consumer: "c",
      maxOutstandingMessages: 10,
      maxOutstandingBytes: 0,
    },
  });

describe("the stream session", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("ends a stream that sends no open within the open timeout, with a message that says so", async () => {
    const { call } = setUp();
    await vi.advanceTimersByTimeAsync(4_999);
    expect(call.error).toBeUndefined();
    await vi.advanceTimersByTimeAsync(2);
    expect(call.error?.code).toBe(3); // INVALID_ARGUMENT
    expect(call.error?.details).toContain("no `open` message arrived");
  });

  it("beats once an interval while idle, and every write re-arms the beat", async () => {
    const { call, memory, deliveries } = setUp();
    open(call);
    await vi.advanceTimersByTimeAsync(0);
    expect(call.kinds()).toEqual(["opened"]);
    await vi.advanceTimersByTimeAsync(HEARTBEAT_MS - 10);
    expect(call.kinds()).toEqual(["opened"]);
    await vi.advanceTimersByTimeAsync(20);
    expect(call.kinds()).toEqual(["opened", "heartbeat"]);
    // A delivery half an interval later: the next beat comes an interval after it, not before.
    await vi.advanceTimersByTimeAsync(HEARTBEAT_MS / 2);
    memory.publish(subscription.topic, ["e1"]);
    deliveries.wakeTopics([subscription.topic]);
    await vi.advanceTimersByTimeAsync(0);
    expect(call.kinds()).toEqual(["opened", "heartbeat", "deliveries"]);
    await vi.advanceTimersByTimeAsync(HEARTBEAT_MS - 10);
    expect(call.kinds()).toHaveLength(3);
    await vi.advanceTimersByTimeAsync(20);
    expect(call.kinds()).toEqual(["opened", "heartbeat", "deliveries", "heartbeat"]);
  });

  it("delivers from the cursor and answers every ack id: acked once, then stale, unknown for a stranger", async () => {
    const { call, memory, deliveries } = setUp();
    open(call);
    await vi.advanceTimersByTimeAsync(0);
    memory.publish(subscription.topic, ["e1", "e2"]);
    deliveries.wakeTopics([subscription.topic]);
    await vi.advanceTimersByTimeAsync(0);
    const sent = call.written.flatMap((w) =>
      w.response?.$case === "deliveries" ? w.response.value.deliveries : [],
    );
    expect(sent.map((d) => [d.event?.id, d.deliveryAttempt])).toEqual([
      ["e1", 1],
      ["e2", 1],
    ]);
    const [first] = sent;
    call.send({ $case: "ack", value: { ackIds: [first?.ackId as string, "nobody:0"] } });
    await vi.advanceTimersByTimeAsync(0);
    call.send({ $case: "ack", value: { ackIds: [first?.ackId as string] } });
    await vi.advanceTimersByTimeAsync(0);
    const results = call.written.flatMap((w) =>
      w.response?.$case === "ackResults" ? w.response.value.results : [],
    );
    expect(results.map((r) => r.status)).toEqual([
      AckStatus.ACK_STATUS_ACKED,
      AckStatus.ACK_STATUS_UNKNOWN,
      AckStatus.ACK_STATUS_STALE,
    ]);
  });
});
