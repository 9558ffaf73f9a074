// Issue 20 section 6: input that used to be accepted. A retry multiplier or jitter that is not a
// finite number is refused naming the field (CreateSubscription and UpdateSubscription), and an
// attribute named `__proto__` is refused rather than silently becoming an object's prototype.
import { status } from "@grpc/grpc-js";
import { Event } from "@pgmesh/proto/pgmesh/v1/event";
import { describe, expect, it } from "vitest";
import { useTestBroker } from "../support/broker.ts";

const t = useTestBroker();

const refusal = (call: Promise<unknown>) =>
  call.then(
    () => undefined,
    (error: { code: number; details: string }) => error,
  );

describe("non-finite and prototype-named input", () => {
  it("refuses a NaN or infinite retry multiplier or jitter, naming the field", async () => {
    const { client } = t.mesh;
    await client.createTopic("nf");
    for (const [field, retryPolicy] of [
      ["multiplier", { multiplier: Number.NaN }],
      ["jitter", { jitter: Number.NaN }],
      ["multiplier", { multiplier: Number.POSITIVE_INFINITY }],
    ] as const) {
      const error = await refusal(client.createSubscription("nf.sub", "nf", { retryPolicy }));
      expect(error?.code).toBe(status.INVALID_ARGUMENT);
      expect(error?.details).toContain(`retry_policy.${field}`);
    }
    await client.createSubscription("nf.ok", "nf");
    const update = await refusal(client.updateSubscription("nf.ok", { retryPolicy: { jitter: Number.NaN } }));
    expect(update?.code).toBe(status.INVALID_ARGUMENT);
    expect(update?.details).toContain("retry_policy.jitter");
  });

  it("refuses an attribute named __proto__", async () => {
    const { client } = t.mesh;
    await client.createTopic("nf.attrs");
    // Sent as raw wire bytes through the generated client: an own "__proto__" key is encoded as a
    // map entry (the SDK's fromPartial would drop it before sending).
    const attributes = JSON.parse('{"__proto__": "x"}') as Record<string, string>;
    const event = { ...Event.fromPartial({ id: "p", source: "s", type: "t" }), attributes };
    const error = await new Promise<{ code: number; details: string } | undefined>((resolve) =>
      client.publisher.publish({ topic: "nf.attrs", events: [event] }, (e) =>
        resolve(e ? { code: e.code, details: e.details } : undefined),
      ),
    );
    expect(error?.code).toBe(status.INVALID_ARGUMENT);
    expect(error?.details).toContain("__proto__");
  });
});
