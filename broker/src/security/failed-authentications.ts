// Failed authentications, counted per peer address and per token id over a fixed window. Past the
// limit a caller is refused before its credentials are looked up, so a flood of guesses costs no
// database lookups; only failures count, so a valid token never runs up a count, and a limited
// address does not stop the same token from another address.
import { RateLimiterMemory } from "rate-limiter-flexible";

export interface FailureLimit {
  /** Failed authentications allowed per key and window. */
  failures: number;
  windowSeconds: number;
}

export const DEFAULT_FAILURE_LIMIT: FailureLimit = { failures: 20, windowSeconds: 60 };

/** The keys an attempt counts against: its peer's address and, when it sent one, its token's id. */
export function attemptKeys(peerAddress: string | undefined, tokenId: string | undefined): string[] {
  const keys: string[] = [];
  if (peerAddress) keys.push(`address ${peerAddress}`);
  if (tokenId) keys.push(`token ${tokenId}`);
  return keys;
}

export class FailedAuthentications {
  private readonly counts: RateLimiterMemory;

  constructor(private readonly limit: FailureLimit = DEFAULT_FAILURE_LIMIT) {
    this.counts = new RateLimiterMemory({ points: limit.failures, duration: limit.windowSeconds });
  }

  /** Milliseconds until every key may try again; 0 when none is over its limit. */
  async blockedFor(keys: string[]): Promise<number> {
    let wait = 0;
    for (const key of keys) {
      const count = await this.counts.get(key);
      if (count && count.consumedPoints >= this.limit.failures) wait = Math.max(wait, count.msBeforeNext);
    }
    return wait;
  }

  async record(keys: string[]): Promise<void> {
    await Promise.all(keys.map((key) => this.counts.penalty(key, 1)));
  }
}
