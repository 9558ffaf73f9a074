import { describe, expect, it } from "vitest";
import type { DeliveryPolicy, Lease } from "../../src/delivery/model.ts";
import { backoffSeconds, checkRetryPolicy, failureOutcome } from "../../src/delivery/retry-policy.ts";

const policy: DeliveryPolicy = {
  ackDeadlineSeconds: 60,
  ackedRetentionSeconds: 0,
  maxDeliveryAttempts: 3,
  deadLettering: true,
  retryPolicy: { initialBackoffSeconds: 2, maxBackoffSeconds: 30, multiplier: 3, jitter: 0 },
};
const lease = (retryCount: number): Lease => ({ jobId: "j", retryCount, eventSeq: "1" });

describe("backoffSeconds", () => {
  it("grows by the multiplier from the initial delay and stops at the maximum", () => {
    expect([1, 2, 3, 4, 5].map((n) => backoffSeconds(policy.retryPolicy, n))).toEqual([2, 6, 18, 30, 30]);
  });

  it("spreads by at most the jitter, in whole seconds", () => {
    const jittery = { ...policy.retryPolicy, initialBackoffSeconds: 10, jitter: 0.5 };
    expect(backoffSeconds(jittery, 1, () => 0)).toBe(5);
    expect(backoffSeconds(jittery, 1, () => 0.5)).toBe(10);
    expect(backoffSeconds(jittery, 1, () => 0.999999)).toBe(15);
    // Never past the maximum, even with jitter.
    expect(backoffSeconds({ ...jittery, maxBackoffSeconds: 10 }, 3, () => 0.999999)).toBe(10);
  });
});

describe("failureOutcome", () => {
  it("retries after the backoff until the last attempt, then dead-letters", () => {
    expect(failureOutcome(policy, lease(0), { error: "e" })).toEqual({
      lease: lease(0),
      retryAfterSeconds: 2,
      error: "e",
    });
    expect(failureOutcome(policy, lease(1), { error: "e" })).toEqual({
      lease: lease(1),
      retryAfterSeconds: 6,
      error: "e",
    });
    expect(failureOutcome(policy, lease(2), { error: "e" })).toEqual({
      lease: lease(2),
      deadLetter: "max_attempts",
      error: "e",
    });
  });

  it("lets a nack's own delay win, and a reject dead-letter at once", () => {
    expect(failureOutcome(policy, lease(0), { error: "e", delaySeconds: 7 })).toMatchObject({
      retryAfterSeconds: 7,
    });
    expect(failureOutcome(policy, lease(0), { error: "e", reject: true })).toMatchObject({
      deadLetter: "rejected",
    });
  });

  it("never dead-letters for attempts when dead lettering is off", () => {
    expect(failureOutcome({ ...policy, deadLettering: false }, lease(50), { error: "e" })).toMatchObject({
      retryAfterSeconds: 30,
    });
  });
});

describe("checkRetryPolicy", () => {
  it("accepts the edges and refuses what is past them", () => {
    expect(() =>
      checkRetryPolicy({ initialBackoffSeconds: 0, maxBackoffSeconds: 0, multiplier: 1, jitter: 0 }),
    ).not.toThrow();
    expect(() =>
      checkRetryPolicy({ initialBackoffSeconds: 1.5, maxBackoffSeconds: 2, multiplier: 2, jitter: 0 }),
    ).toThrow(/initial_backoff must be 0s..3600s in whole seconds/);
    expect(() =>
      checkRetryPolicy({ initialBackoffSeconds: 1, maxBackoffSeconds: 90_000, multiplier: 2, jitter: 0 }),
    ).toThrow(/max_backoff/);
    expect(() =>
      checkRetryPolicy({ initialBackoffSeconds: 1, maxBackoffSeconds: 2, multiplier: 11, jitter: 0 }),
    ).toThrow(/multiplier must be from 1 to 10/);
  });
});
