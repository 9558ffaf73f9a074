// One open subscriber stream: its window of unsettled deliveries and the leases it holds.
import { randomBytes } from "node:crypto";
import type { Lease, StoredEvent, Subscription } from "./model.ts";

export interface OutboundDelivery {
  ackId: string;
  attempt: number;
  event: StoredEvent;
}

/** Where a consumer's deliveries go; the server implements it on the gRPC stream. */
export interface DeliverySink {
  deliver(deliveries: OutboundDelivery[]): void;
}

export type SettleStatus =
  | "acked"
  | "nacked"
  | "stale"
  | "unknown"
  | "extended"
  | "dead_lettered"
  /** Refused for what it asked; the lease is still held. */
  | "invalid_argument"
  /** Refused for what the subscription allows; the lease is still held. */
  | "failed_precondition";

/**
 * How much may be unsettled on a stream at once: deliveries, and bytes of events (0: no byte
 * limit). The byte limit is soft, as in Pub/Sub: a stream under it takes one more event whatever
 * its size, so an event larger than the whole limit is still delivered, alone.
 */
export interface Window {
  messages: number;
  bytes: number;
}

export const DEFAULT_MAX_OUTSTANDING = 100;
export const MAX_OUTSTANDING_LIMIT = 10_000;

/**
 * One ack id of a settle, in the order the client sent it: the lease when this stream held it
 * (the first time the id appears), otherwise the answer already known.
 */
export type Claim = { ackId: string; lease: Lease } | { ackId: string; status: SettleStatus };

interface HeldLease {
  lease: Lease;
  /** The event's size, counted against the byte window. */
  bytes: number;
  /** When the lease runs out (ms since epoch); extend moves it. */
  expiresAt: number;
}

/**
 * The ack ids of one stream: its own random prefix and a count of the deliveries it was handed, so
 * every delivery (every attempt of an event, too) has an id of its own, and an id of another
 * stream (one before a reconnect, say) is never taken for one of this stream's. A counted id that
 * is not held was held once: a late or repeated settle of it is answered "stale", without
 * remembering the released ids (a set of them cost the broker's thread 0.12 s in bench (a)).
 */
class AckIds {
  private readonly prefix = `${randomBytes(6).toString("base64url")}.`;
  private issued = 0;

  next(): { id: string; n: number } {
    this.issued += 1;
    return { id: this.prefix + this.issued, n: this.issued };
  }

  /** The count in one of this stream's ids, or undefined for any other string. */
  parse(ackId: string): number | undefined {
    if (!ackId.startsWith(this.prefix)) return undefined;
    const digits = ackId.slice(this.prefix.length);
    const n = Number(digits);
    return Number.isSafeInteger(n) && n >= 1 && n <= this.issued && String(n) === digits ? n : undefined;
  }
}

export class Consumer {
  /** Replaced when the subscription's policy changes. */
  subscription: Subscription;
  readonly name: string;
  private window: Window;
  private readonly ackIds = new AckIds();
  /** The leases held, by the count in their ack id. */
  private readonly held = new Map<number, HeldLease>();
  private heldBytes = 0;
  private closed = false;
  /** Settles claimed from this stream and not yet answered by the queue; a drain waits for them. */
  settling = 0;
  readonly openedAt = new Date();

  constructor(
    subscription: Subscription,
    name: string,
    window: Window,
    readonly sink: DeliverySink,
  ) {
    this.subscription = subscription;
    this.name = name;
    this.window = { ...window };
  }

  /** How many more deliveries this stream may take now (none while its byte window is full). */
  get free(): number {
    if (this.closed || this.freeBytes === 0) return 0;
    return Math.max(0, this.window.messages - this.held.size);
  }

  /** How many more bytes of events this stream may take now (Infinity without a byte limit). */
  get freeBytes(): number {
    if (this.window.bytes === 0) return Number.POSITIVE_INFINITY;
    return Math.max(0, this.window.bytes - this.heldBytes);
  }

  get outstanding(): number {
    return this.held.size;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  get maxOutstandingMessages(): number {
    return this.window.messages;
  }

  get maxOutstandingBytes(): number {
    return this.window.bytes;
  }

  /** Changes the window; a byte limit left out stays as it is. */
  setWindow(messages: number, bytes: number = this.window.bytes): void {
    this.window = { messages, bytes };
  }

  /**
   * Records the lease as held by this stream and returns the ack id to send with it. `leasedAt` is
   * when the queue leased it: the lease runs out an ack deadline after that.
   */
  hold(lease: Lease, bytes: number, leasedAt: number): string {
    const { id, n } = this.ackIds.next();
    this.held.set(n, {
      lease,
      bytes,
      expiresAt: leasedAt + this.subscription.ackDeadlineSeconds * 1000,
    });
    this.heldBytes += bytes;
    return id;
  }

  /** The held leases among these ack ids, without releasing them (for extend). */
  peek(ackIds: string[]): { leases: Map<string, Lease>; others: Map<string, SettleStatus> } {
    const leases = new Map<string, Lease>();
    const others = new Map<string, SettleStatus>();
    for (const ackId of ackIds) {
      const found = this.find(ackId);
      if ("held" in found) leases.set(ackId, found.held.lease);
      else others.set(ackId, found.status);
    }
    return { leases, others };
  }

  /** Records that these leases (by ack id, as the queue now has them) run out at `expiresAt`. */
  extended(leases: Map<string, Lease>, expiresAt: number): void {
    for (const [ackId, lease] of leases) {
      const found = this.find(ackId);
      if (!("held" in found)) continue;
      found.held.lease = lease;
      found.held.expiresAt = expiresAt;
    }
  }

  /**
   * Releases the held leases among these ack ids for settling. An id repeated in the list is
   * claimed once: its repeats are "stale", like a settle of an id already settled.
   */
  claim(ackIds: string[]): Claim[] {
    return ackIds.map((ackId): Claim => {
      const found = this.find(ackId);
      if (!("held" in found)) return { ackId, status: found.status };
      this.release(found.n, found.held);
      return { ackId, lease: found.held.lease };
    });
  }

  /**
   * Forgets leases that ran out: the queue has handed them (or will) to another consumer, so they
   * no longer count against this stream's window.
   */
  expireLapsed(now: number): number {
    let count = 0;
    for (const [n, held] of this.held) {
      if (now < held.expiresAt) continue;
      this.release(n, held);
      count++;
    }
    return count;
  }

  /** Marks the stream closed and hands back every lease it still holds. */
  close(): Lease[] {
    this.closed = true;
    const leases = [...this.held.values()].map((h) => h.lease);
    this.held.clear();
    this.heldBytes = 0;
    return leases;
  }

  /** The lease an ack id names, if this stream holds it; otherwise the answer to a settle of it. */
  private find(ackId: string): { n: number; held: HeldLease } | { status: "unknown" | "stale" } {
    const n = this.ackIds.parse(ackId);
    if (n === undefined) return { status: "unknown" };
    const held = this.held.get(n);
    return held ? { n, held } : { status: "stale" };
  }

  private release(n: number, held: HeldLease): void {
    this.held.delete(n);
    this.heldBytes -= held.bytes;
  }
}
