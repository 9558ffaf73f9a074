// What a subscribe handler can say besides "done" (resolve) and "failed, retry by the policy"
// (throw): throw one of these to dead-letter the event or to choose its retry delay.

/** Thrown from a handler: dead-letter the event now (a poison message), with this reason. */
export class RejectEvent extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = "RejectEvent";
  }
}

/** Thrown from a handler: redeliver the event after `seconds` instead of the subscription's backoff. */
export class RetryEventAfter extends Error {
  constructor(
    readonly seconds: number,
    readonly reason = `retry after ${seconds}s`,
  ) {
    super(reason);
    this.name = "RetryEventAfter";
  }
}

export const reject = (reason: string) => new RejectEvent(reason);
export const retryAfter = (seconds: number, reason?: string) => new RetryEventAfter(seconds, reason);
