// Retrying a call that may or may not have reached the broker. Only safe because every event
// carries its id from the client: the broker stores (topic, source, id) once, so a publish repeated
// after a timeout or UNAVAILABLE is reported as a duplicate instead of stored twice.
import { type ServiceError, status } from "@grpc/grpc-js";

export interface RetrySettings {
  /** First delay between attempts, in ms (default 100). */
  initialBackoffMs?: number;
  /** Longest delay between attempts, in ms (default 5000). */
  maxBackoffMs?: number;
  /** Growth of the delay per attempt (default 2). Each delay is drawn at random below it. */
  multiplier?: number;
  /** Give up once this much time has passed since the first attempt, in ms (default 60000). */
  totalTimeoutMs?: number;
}

/**
 * Codes after which the same request may succeed; anything else is the request's own fault.
 * RESOURCE_EXHAUSTED is not among them: the broker answers it to a request over its size limit,
 * which no retry can fix.
 */
const RETRYABLE = new Set<number>([status.UNAVAILABLE, status.DEADLINE_EXCEEDED, status.ABORTED]);

export const isRetryable = (error: unknown): boolean =>
  RETRYABLE.has((error as Partial<ServiceError>).code ?? -1);

/**
 * Runs `attempt` until it succeeds, fails with a code not worth retrying, the total timeout is
 * spent or `signal` aborts. Each attempt gets the deadline that is left.
 */
export async function withRetries<R>(
  attempt: (deadline: number) => Promise<R>,
  settings: RetrySettings,
  signal: AbortSignal | undefined,
): Promise<R> {
  const deadline = Date.now() + (settings.totalTimeoutMs ?? 60_000);
  let backoff = settings.initialBackoffMs ?? 100;
  for (;;) {
    try {
      return await attempt(deadline);
    } catch (error) {
      const delay = Math.random() * backoff;
      if (!isRetryable(error) || signal?.aborted || Date.now() + delay >= deadline) throw error;
      await sleep(delay, signal);
      backoff = Math.min(settings.maxBackoffMs ?? 5000, backoff * (settings.multiplier ?? 2));
    }
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
  });
}
