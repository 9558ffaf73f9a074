// Acks of one stream, sent in one message per event-loop turn rather than one per event: the
// broker settles a message's ids in one transaction, so this is what lets a busy consumer keep up.
// One batcher per stream: a stream that broke took its leases with it, so its unsent acks are
// discarded with it (the events come back) instead of going out on the next stream.

export class AckBatcher {
  private pending: string[] = [];
  private scheduled: NodeJS.Immediate | undefined;
  private discarded = false;

  constructor(private readonly send: (ackIds: string[]) => void) {}

  add(ackId: string): void {
    if (this.discarded) return;
    this.pending.push(ackId);
    this.scheduled ??= setImmediate(() => this.flush());
  }

  /** Sends what is queued now (before the stream ends, for one). */
  flush(): void {
    if (this.scheduled) clearImmediate(this.scheduled);
    this.scheduled = undefined;
    const ackIds = this.pending;
    this.pending = [];
    if (ackIds.length > 0 && !this.discarded) this.send(ackIds);
  }

  /** Drops what is queued and ignores later adds: the stream is gone. */
  discard(): void {
    if (this.scheduled) clearImmediate(this.scheduled);
    this.scheduled = undefined;
    this.pending = [];
    this.discarded = true;
  }
}
