// The one retry rule, applied alike to a nack, a lapsed lease and a dropped stream: redelivery n
// waits min(max, initial * multiplier^(n-1)), moved randomly by up to +/- jitter, in whole seconds
// (the queue stores delays as seconds). A nack that names its own delay overrides it.
import { invalidArgument } from "./errors.ts";
import type { DeliveryPolicy, FailureOutcome, Lease, RetryPolicy } from "./model.ts";

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  initialBackoffSeconds: 1,
  maxBackoffSeconds: 60,
  multiplier: 2,
  jitter: 0.1,
};
export const DEFAULT_MAX_DELIVERY_ATTEMPTS = 5;
export const MAX_NACK_DELAY_SECONDS = 24 * 60 * 60;

export function backoffSeconds(
  policy: RetryPolicy,
  failedAttempt: number,
  random: () => number = Math.random,
): number {
  const exponent = Math.max(0, failedAttempt - 1);
  const base = Math.min(
    policy.maxBackoffSeconds,
    policy.initialBackoffSeconds * policy.multiplier ** exponent,
  );
  const jittered = base * (1 + policy.jitter * (2 * random() - 1));
  return Math.max(0, Math.min(policy.maxBackoffSeconds, Math.round(jittered)));
}

/**
 * Decides what happens to a delivery that failed on attempt `retryCount + 1`: dead-lettered when
 * rejected or out of attempts (with dead lettering on), otherwise retried after the backoff or the
 * nack's own delay.
 */
export function failureOutcome(
  policy: DeliveryPolicy,
  lease: Lease,
  failure: { error: string; delaySeconds?: number; reject?: boolean },
): FailureOutcome {
  const attempt = lease.retryCount + 1;
  if (failure.reject) return { lease, deadLetter: "rejected", error: failure.error };
  if (policy.deadLettering && attempt >= policy.maxDeliveryAttempts) {
    return { lease, deadLetter: "max_attempts", error: failure.error };
  }
  const retryAfterSeconds = failure.delaySeconds ?? backoffSeconds(policy.retryPolicy, attempt);
  return { lease, retryAfterSeconds, error: failure.error };
}

/** Checks a policy a user asked for; every message names the field and the allowed range. */
export function checkRetryPolicy(policy: RetryPolicy): RetryPolicy {
  const { initialBackoffSeconds: initial, maxBackoffSeconds: max, multiplier, jitter } = policy;
  if (!Number.isInteger(initial) || initial < 0 || initial > 3600) {
    throw invalidArgument(`retry_policy.initial_backoff must be 0s..3600s in whole seconds, got ${initial}s`);
  }
  if (!Number.isInteger(max) || max < initial || max > 86_400) {
    throw invalidArgument(
      `retry_policy.max_backoff must be initial_backoff (${initial}s)..86400s, got ${max}s`,
    );
  }
  if (!Number.isFinite(multiplier) || multiplier < 1 || multiplier > 10) {
    throw invalidArgument(`retry_policy.multiplier must be from 1 to 10, got ${multiplier}`);
  }
  if (!Number.isFinite(jitter) || jitter < 0 || jitter > 1) {
    throw invalidArgument(`retry_policy.jitter must be from 0 to 1, got ${jitter}`);
  }
  return policy;
}

export function checkMaxDeliveryAttempts(value: number): number {
  if (!Number.isInteger(value) || value < 1 || value > 1000) {
    throw invalidArgument(`max_delivery_attempts must be from 1 to 1000, got ${value}`);
  }
  return value;
}
