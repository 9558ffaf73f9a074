// The long calls (Subscribe streams) this broker let in, watched for as long as they stay open:
// each is checked again whenever principals or tokens change (on any broker: the authenticator
// hears Postgres's notice), when its token expires, and every CACHE_MS in case a notice was lost.
// What a call does with the verdict (carry on with the principal as it is now, or end) is the
// call's business: see server/auth/interceptor.ts.
import { type Authenticator, CACHE_MS, type Credential, type Identity } from "./authenticator.ts";

export interface WatchedCall {
  readonly credential: Credential;
  /** Settles with the caller's identity as it is now, or rejects with why it no longer holds. */
  recheck(verdict: Promise<Identity>): void;
}

// setTimeout's longest delay (about 24.8 days); a later expiry is re-armed when this one fires.
const LONGEST_TIMER_MS = 2 ** 31 - 1;

export class OpenCalls {
  /** Each call with the timer that fires at its token's expiry, if it has one. */
  private readonly calls = new Map<WatchedCall, NodeJS.Timeout | undefined>();
  private readonly backstop: NodeJS.Timeout;

  constructor(
    private readonly authenticator: Authenticator,
    private readonly now: () => number = Date.now,
  ) {
    authenticator.onChange(() => this.recheckAll());
    this.backstop = setInterval(() => this.recheckAll(), CACHE_MS);
    this.backstop.unref();
  }

  get size(): number {
    return this.calls.size;
  }

  add(call: WatchedCall): void {
    this.calls.set(call, this.expiryTimer(call, call.credential));
  }

  remove(call: WatchedCall): void {
    clearTimeout(this.calls.get(call));
    this.calls.delete(call);
  }

  stop(): void {
    clearInterval(this.backstop);
    for (const call of [...this.calls.keys()]) this.remove(call);
  }

  private recheckAll(): void {
    for (const call of this.calls.keys()) this.recheck(call);
  }

  private recheck(call: WatchedCall): void {
    // The authenticator's cache shares one lookup among the calls of one token.
    const verdict = this.authenticator.recheck(call.credential);
    call.recheck(verdict);
    verdict.then(
      (identity) => {
        if (!this.calls.has(call)) return;
        clearTimeout(this.calls.get(call));
        this.calls.set(call, this.expiryTimer(call, identity.credential));
      },
      () => {},
    );
  }

  private expiryTimer(call: WatchedCall, credential: Credential): NodeJS.Timeout | undefined {
    if (credential.kind !== "token" || !credential.expiresAt) return undefined;
    // A millisecond past the expiry, so that the check sees the token expired.
    const delay = Math.min(credential.expiresAt.getTime() - this.now() + 1, LONGEST_TIMER_MS);
    const timer = setTimeout(() => this.recheck(call), Math.max(0, delay));
    timer.unref();
    return timer;
  }
}
