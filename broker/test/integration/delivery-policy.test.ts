// Retries, backoff, dead letters, redrive, reject, leases, delayed delivery and subscription
// policy: what happens when consumers fail, on a real broker and Postgres.
import { status } from "@grpc/grpc-js";
import { DeadLetterReason } from "@pgmesh/proto/pgmesh/v1/admin";
import { AckStatus } from "@pgmesh/proto/pgmesh/v1/subscriber";
import { beforeAll, describe, expect, it } from "vitest";
import { useTestBroker } from "../support/broker.ts";
import { rejection } from "../support/rejection.ts";
import { StreamProbe, sleep } from "../support/stream-probe.ts";

const t = useTestBroker();
const noBackoff = { initialBackoffSeconds: 0, maxBackoffSeconds: 0, jitter: 0 };

beforeAll(async () => {});

async function topicWithSubscription(
  name: string,
  policy: Parameters<typeof t.mesh.client.createSubscription>[2],
) {
  await t.mesh.client.createTopic(name);
  return t.mesh.client.createSubscription(`${name}.sub`, name, policy);
}

describe("retries", () => {
  it("a handler that fails twice then succeeds gets attempts 1, 2, 3 spaced by the backoff", async () => {
    await topicWithSubscription("backoff", {
      retryPolicy: { initialBackoffSeconds: 1, maxBackoffSeconds: 10, multiplier: 2, jitter: 0 },
    });
    await t.mesh.client.publish("backoff", [{ id: "flaky", source: "s", type: "t" }]);
    const probe = await StreamProbe.open(t.mesh.client, "backoff.sub");
    const seenAt: number[] = [];
    for (let attempt = 1; attempt <= 3; attempt++) {
      const delivery = (await probe.waitForDeliveries(attempt, 15_000))[attempt - 1];
      seenAt.push(Date.now());
      expect(delivery?.deliveryAttempt).toBe(attempt);
      const ackId = delivery?.ackId ?? "";
      if (attempt < 3) {
        const [result] = await probe.settleAndWait(() => probe.nack([ackId], `failure ${attempt}`), 1);
        expect(result?.status).toBe(AckStatus.ACK_STATUS_NACKED);
      } else {
        expect((await probe.ackAndWait([ackId]))[0]?.status).toBe(AckStatus.ACK_STATUS_ACKED);
      }
    }
    const [first = 0, second = 0, third = 0] = seenAt;
    // 1 s, then 2 s (multiplier 2); the upper bounds leave room for the 200 ms fallback poll.
    expect(second - first).toBeGreaterThanOrEqual(900);
    expect(second - first).toBeLessThan(2000);
    expect(third - second).toBeGreaterThanOrEqual(1900);
    expect(third - second).toBeLessThan(3200);
    await probe.close();
  });

  it("a nack's own delay wins over the backoff", async () => {
    await topicWithSubscription("nackdelay", { retryPolicy: noBackoff });
    await t.mesh.client.publish("nackdelay", [{ id: "later", source: "s", type: "t" }]);
    const probe = await StreamProbe.open(t.mesh.client, "nackdelay.sub");
    const [first] = await probe.waitForDeliveries(1);
    const nackedAt = Date.now();
    await probe.settleAndWait(() => probe.nack([first?.ackId ?? ""], "not yet", 2), 1);
    await probe.waitForDeliveries(2);
    expect(Date.now() - nackedAt).toBeGreaterThanOrEqual(1900);
    await probe.close();
  });

  it("1,000 events through a subscription that nacks every third once end acked exactly once, none lost", async () => {
    await topicWithSubscription("thousand", { retryPolicy: noBackoff });
    const ids = Array.from({ length: 1000 }, (_, i) => `t${i}`);
    for (let i = 0; i < ids.length; i += 250) {
      await t.mesh.client.publish(
        "thousand",
        ids.slice(i, i + 250).map((id) => ({ id, source: "s", type: "t" })),
      );
    }
    const probe = await StreamProbe.open(t.mesh.client, "thousand.sub", 200);
    const acked = new Map<string, number>();
    let handled = 0;
    while (acked.size < ids.length) {
      await probe.until(() => probe.deliveries.length > handled, "more deliveries", 20_000);
      const batch = probe.deliveries.slice(handled);
      handled += batch.length;
      const nacks = batch.filter((d) => Number(d.event?.id.slice(1)) % 3 === 0 && d.deliveryAttempt === 1);
      const acks = batch.filter((d) => !nacks.includes(d));
      if (nacks.length > 0)
        await probe.settleAndWait(() => probe.nack(nacks.map((d) => d.ackId)), nacks.length);
      const results = await probe.ackAndWait(acks.map((d) => d.ackId));
      results.forEach((result, i) => {
        expect(result.status).toBe(AckStatus.ACK_STATUS_ACKED);
        const id = acks[i]?.event?.id ?? "";
        acked.set(id, (acked.get(id) ?? 0) + 1);
      });
    }
    expect([...acked.keys()].sort()).toEqual([...ids].sort());
    expect([...acked.values()].every((n) => n === 1)).toBe(true);
    expect(probe.deliveries.filter((d) => d.deliveryAttempt === 2)).toHaveLength(334);
    const stats = await t.mesh.client.subscriptionStats("thousand.sub");
    expect(stats).toMatchObject({ backlog: 0, inFlight: 0, deadLetters: 0 });
    await probe.close();
  });
});

describe("dead letters", () => {
  it("a poison event lands in the dead-letter table after max attempts, is listed, redriven once, and delivered again", async () => {
    await topicWithSubscription("poison", { maxDeliveryAttempts: 3, retryPolicy: noBackoff });
    await t.mesh.client.publish("poison", [
      { id: "bad", source: "s", type: "shop.Poison" },
      { id: "good", source: "s", type: "shop.Fine" },
    ]);
    const probe = await StreamProbe.open(t.mesh.client, "poison.sub");
    const statuses: AckStatus[] = [];
    let handled = 0;
    while (statuses.length < 3) {
      await probe.until(() => probe.deliveries.length > handled, "a delivery");
      for (const d of probe.deliveries.slice(handled)) {
        handled++;
        if (d.event?.id === "good") await probe.ackAndWait([d.ackId]);
        else {
          const [r] = await probe.settleAndWait(
            () => probe.nack([d.ackId], `boom on attempt ${d.deliveryAttempt}`),
            1,
          );
          statuses.push(r?.status ?? AckStatus.UNRECOGNIZED);
        }
      }
    }
    expect(statuses).toEqual([
      AckStatus.ACK_STATUS_NACKED,
      AckStatus.ACK_STATUS_NACKED,
      AckStatus.ACK_STATUS_DEAD_LETTERED,
    ]);
    await sleep(500);
    expect(probe.deliveries.filter((d) => d.event?.id === "bad")).toHaveLength(3);

    const listed = await t.mesh.client.listDeadLetters({ subscription: "poison.sub" });
    expect(listed.deadLetters).toHaveLength(1);
    const [dead] = listed.deadLetters;
    expect(dead).toMatchObject({
      subscription: "poison.sub",
      attempts: 3,
      reason: DeadLetterReason.DEAD_LETTER_REASON_MAX_ATTEMPTS,
      lastError: "boom on attempt 3",
    });
    expect(dead?.event?.id).toBe("bad");
    expect(dead?.firstFailureTime?.getTime()).toBeLessThanOrEqual(dead?.deadLetterTime?.getTime() ?? 0);
    expect(await t.mesh.client.subscriptionStats("poison.sub")).toMatchObject({
      backlog: 0,
      inFlight: 0,
      deadLetters: 1,
    });

    // Redrive it: delivered again as a fresh attempt 1; a retried redrive does nothing.
    expect(await t.mesh.client.redriveDeadLetters("poison.sub", { ids: [dead?.id ?? ""] })).toBe(1);
    expect(await t.mesh.client.redriveDeadLetters("poison.sub", { ids: [dead?.id ?? ""] })).toBe(0);
    const [again] = (await probe.waitForDeliveries(handled + 1)).slice(handled);
    expect(again?.event?.id).toBe("bad");
    expect(again?.deliveryAttempt).toBe(1);
    await probe.ackAndWait([again?.ackId ?? ""]);
    expect((await t.mesh.client.listDeadLetters({ subscription: "poison.sub" })).deadLetters).toHaveLength(0);
    await probe.close();
  });

  it("reject dead-letters at once; the listing filters by reason and event type; purge removes them", async () => {
    await topicWithSubscription("rejects", {});
    await t.mesh.client.publish("rejects", [
      { id: "r1", source: "s", type: "shop.A" },
      { id: "r2", source: "s", type: "shop.B" },
    ]);
    const probe = await StreamProbe.open(t.mesh.client, "rejects.sub");
    const deliveries = await probe.waitForDeliveries(2);
    const results = await probe.settleAndWait(
      () =>
        probe.reject(
          deliveries.map((d) => d.ackId),
          "cannot parse",
        ),
      2,
    );
    expect(results.map((r) => r.status)).toEqual([
      AckStatus.ACK_STATUS_DEAD_LETTERED,
      AckStatus.ACK_STATUS_DEAD_LETTERED,
    ]);
    const byType = await t.mesh.client.listDeadLetters({ subscription: "rejects.sub", eventType: "shop.B" });
    expect(byType.deadLetters.map((d) => [d.event?.id, d.reason, d.lastError, d.attempts])).toEqual([
      ["r2", DeadLetterReason.DEAD_LETTER_REASON_REJECTED, "cannot parse", 1],
    ]);
    const none = await t.mesh.client.listDeadLetters({
      subscription: "rejects.sub",
      reason: DeadLetterReason.DEAD_LETTER_REASON_MAX_ATTEMPTS,
    });
    expect(none.deadLetters).toHaveLength(0);
    const future = await t.mesh.client.listDeadLetters({
      subscription: "rejects.sub",
      after: new Date(Date.now() + 60_000),
    });
    expect(future.deadLetters).toHaveLength(0);
    const paged = await t.mesh.client.listDeadLetters({ subscription: "rejects.sub" }, 1);
    expect(paged.deadLetters).toHaveLength(1);
    const rest = await t.mesh.client.listDeadLetters({ subscription: "rejects.sub" }, 1, paged.nextPageToken);
    expect(rest.deadLetters[0]?.event?.id).not.toBe(paged.deadLetters[0]?.event?.id);

    expect(await t.mesh.client.purgeDeadLetters("rejects.sub", { filter: { eventType: "shop.A" } })).toBe(1);
    expect(
      (await t.mesh.client.listDeadLetters({ subscription: "rejects.sub" })).deadLetters.map(
        (d) => d.event?.id,
      ),
    ).toEqual(["r2"]);
    // Nothing comes back: a dead-lettered event is out of the live queue.
    await sleep(500);
    expect(probe.deliveries).toHaveLength(2);
    await probe.close();
  });

  it("with dead lettering off, events retry past max attempts and reject is refused for that id alone", async () => {
    await topicWithSubscription("nodlq", {
      deadLettering: false,
      maxDeliveryAttempts: 1,
      retryPolicy: noBackoff,
    });
    await t.mesh.client.publish("nodlq", [{ id: "forever", source: "s", type: "t" }]);
    const probe = await StreamProbe.open(t.mesh.client, "nodlq.sub");
    const [first] = await probe.waitForDeliveries(1);
    await probe.settleAndWait(() => probe.nack([first?.ackId ?? ""]), 1);
    const [, second] = await probe.waitForDeliveries(2);
    expect(second?.deliveryAttempt).toBe(2);
    const [refused] = await probe.settleAndWait(() => probe.reject([second?.ackId ?? ""], "nope"), 1);
    expect(refused).toEqual({
      ackId: second?.ackId,
      status: AckStatus.ACK_STATUS_FAILED_PRECONDITION,
      message:
        "subscription nodlq.sub has dead lettering off, so there is nowhere to reject to; nack instead",
    });
    // The delivery is still this stream's to settle, and the stream goes on.
    const [nacked] = await probe.settleAndWait(() => probe.nack([second?.ackId ?? ""]), 1);
    expect(nacked?.status).toBe(AckStatus.ACK_STATUS_NACKED);
    const [, , third] = await probe.waitForDeliveries(3);
    expect(third?.deliveryAttempt).toBe(3);
    await probe.close();
  });
});

describe("leases", () => {
  it("a slow consumer that extends its lease is not redelivered; one that does not is", async () => {
    await topicWithSubscription("extend", { ackDeadlineSeconds: 2, retryPolicy: noBackoff });
    await t.mesh.client.publish("extend", [{ id: "slow", source: "s", type: "t" }]);
    const slow = await StreamProbe.open(t.mesh.client, "extend.sub");
    const [delivery] = await slow.waitForDeliveries(1);
    slow.flow(0);
    const other = await StreamProbe.open(t.mesh.client, "extend.sub");
    for (let i = 0; i < 4; i++) {
      const [r] = await slow.settleAndWait(() => slow.extend([delivery?.ackId ?? ""], 2), 1);
      expect(r?.status).toBe(AckStatus.ACK_STATUS_EXTENDED);
      await sleep(1000);
    }
    // Four seconds on a two-second deadline, and nobody else got it.
    expect(other.deliveries).toHaveLength(0);
    expect((await slow.ackAndWait([delivery?.ackId ?? ""]))[0]?.status).toBe(AckStatus.ACK_STATUS_ACKED);

    // Without extensions the lease lapses and another stream gets attempt 2.
    await other.close();
    slow.flow(1);
    await t.mesh.client.publish("extend", [{ id: "stuck", source: "s", type: "t" }]);
    const [stuck] = (await slow.waitForDeliveries(2)).slice(1);
    slow.flow(0);
    const next = await StreamProbe.open(t.mesh.client, "extend.sub");
    const [redelivered] = await next.waitForDeliveries(1, 10_000);
    expect(redelivered?.event?.id).toBe("stuck");
    expect(redelivered?.deliveryAttempt).toBe(2);
    expect((await slow.ackAndWait([stuck?.ackId ?? ""]))[0]?.status).toBe(AckStatus.ACK_STATUS_STALE);
    await next.ackAndWait([redelivered?.ackId ?? ""]);
    await slow.close();
    await next.close();
  });
});

describe("delayed delivery", () => {
  it("an event is not delivered before its deliver_after time", async () => {
    await topicWithSubscription("delayed", {});
    const probe = await StreamProbe.open(t.mesh.client, "delayed.sub");
    const deliverAfter = new Date(Date.now() + 2000);
    await t.mesh.client.publish("delayed", [{ id: "later", source: "s", type: "t", deliverAfter }]);
    await sleep(1000);
    expect(probe.deliveries).toHaveLength(0);
    expect((await t.mesh.client.subscriptionStats("delayed.sub")).backlog).toBe(1);
    const [delivery] = await probe.waitForDeliveries(1, 5000);
    expect(Date.now()).toBeGreaterThanOrEqual(deliverAfter.getTime() - 50);
    expect(delivery?.event?.deliverAfter).toEqual(deliverAfter);
    await probe.close();
  });
});

describe("subscription policy", () => {
  it("has sensible defaults and can be updated field by field", async () => {
    const created = await topicWithSubscription("policy", {});
    expect(created).toMatchObject({
      ackDeadline: { seconds: 60, nanos: 0 },
      maxDeliveryAttempts: 5,
      deadLettering: true,
      retryPolicy: {
        initialBackoff: { seconds: 1, nanos: 0 },
        maxBackoff: { seconds: 60, nanos: 0 },
        multiplier: 2,
        jitter: 0.1,
      },
    });
    const updated = await t.mesh.client.updateSubscription("policy.sub", {
      maxDeliveryAttempts: 9,
      retryPolicy: { multiplier: 3 },
    });
    expect(updated.maxDeliveryAttempts).toBe(9);
    expect(updated.retryPolicy).toMatchObject({ multiplier: 3, initialBackoff: { seconds: 1, nanos: 0 } });
    expect(updated.ackDeadline).toEqual({ seconds: 60, nanos: 0 });
    expect((await t.mesh.client.getSubscription("policy.sub")).maxDeliveryAttempts).toBe(9);
  });

  it("refuses bad policy values with INVALID_ARGUMENT naming the field", async () => {
    await t.mesh.client.createTopic("badpolicy");
    const cases: [Parameters<typeof t.mesh.client.createSubscription>[2], RegExp][] = [
      [{ ackDeadlineSeconds: -1 }, /ack_deadline must be a whole number of seconds from 1 to 3600, got -1s/],
      [{ maxDeliveryAttempts: 0 }, /max_delivery_attempts must be from 1 to 1000, got 0/],
      [{ retryPolicy: { multiplier: 0.5 } }, /retry_policy.multiplier must be from 1 to 10, got 0.5/],
      [{ retryPolicy: { jitter: 2 } }, /retry_policy.jitter must be from 0 to 1, got 2/],
      [
        { retryPolicy: { initialBackoffSeconds: 30, maxBackoffSeconds: 10 } },
        /retry_policy.max_backoff must be initial_backoff \(30s\)/,
      ],
    ];
    for (const [policy, message] of cases) {
      const error = await rejection(t.mesh.client.createSubscription("badpolicy.sub", "badpolicy", policy));
      expect(error.code).toBe(status.INVALID_ARGUMENT);
      expect(error.details).toMatch(message);
    }
    await t.mesh.client.createSubscription("badpolicy.sub", "badpolicy");
    const badPath = await rejection(
      new Promise((resolve, reject) =>
        t.mesh.client.admin.updateSubscription(
          { subscription: { name: "badpolicy.sub" } as never, updateMask: ["topic"] },
          (error, response) => (error ? reject(error) : resolve(response)),
        ),
      ),
    );
    expect(badPath).toEqual({
      code: status.INVALID_ARGUMENT,
      details: 'update_mask path "topic" cannot be updated (it is fixed when the subscription is created)',
    });
  });
});
