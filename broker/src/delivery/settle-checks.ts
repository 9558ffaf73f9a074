// What a settle may ask for. A settle that asks for something else is refused for its ack ids
// alone (the stream goes on), so these checks run before any lease is claimed.
import { MAX_ACK_DEADLINE_SECONDS } from "./admin.ts";
import { invalidArgument } from "./errors.ts";
import { MAX_NACK_DELAY_SECONDS } from "./retry-policy.ts";

/** A reason becomes a dead letter's last error: text Postgres can store, of a size a person reads. */
export const MAX_REASON_LENGTH = 1024;

export function checkReason(field: string, reason: string): void {
  if (reason.length > MAX_REASON_LENGTH) {
    throw invalidArgument(`${field} is at most ${MAX_REASON_LENGTH} characters, got ${reason.length}`);
  }
  // Postgres text cannot hold NUL.
  if (reason.includes("\0")) throw invalidArgument(`${field} must not contain NUL characters`);
}

export function checkNackDelay(seconds: number | undefined): void {
  if (seconds !== undefined && (seconds < 0 || seconds > MAX_NACK_DELAY_SECONDS)) {
    throw invalidArgument(`nack.delay must be 0s..${MAX_NACK_DELAY_SECONDS}s, got ${seconds}s`);
  }
}

export function checkExtendSeconds(seconds: number): void {
  if (seconds < 1 || seconds > MAX_ACK_DEADLINE_SECONDS) {
    throw invalidArgument(`extend.duration must be 1s..${MAX_ACK_DEADLINE_SECONDS}s, got ${seconds}s`);
  }
}
