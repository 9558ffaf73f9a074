// The delivery port (delivery/ports.ts DeliveryQueue) in memory, on a clock the test moves: the
// test kit's stand-in for store/queue.ts. The conformance suite (delivery-queue-conformance.ts)
// holds it and the Postgres implementation to the same behaviour, so unit tests of the delivery
// logic that run on it mean what they say. Ordering keys are not modelled (every queue behaves as
// a standard one).
import type {
  FailureOutcome,
  Lease,
  LeaseHolding,
  ScheduledDelivery,
  StoredEvent,
  Subscription,
} from "../../src/delivery/model.ts";
import type { DeliveryQueue } from "../../src/delivery/ports.ts";

type JobState = "created" | "retry" | "active" | "completed";

interface Job {
  id: string;
  queue: string;
  seq: string;
  state: JobState;
  retryCount: number;
  startAfter: number;
  expiresAt: number;
  order: number;
}

export class MemoryDeliveryQueue implements DeliveryQueue {
  now = 1_000_000;
  private readonly jobs = new Map<string, Job>();
  private readonly cursors = new Map<string, { topic: string; position: string }>();
  private readonly ackDeadlines = new Map<string, number>();
  private readonly topics = new Map<string, StoredEvent[]>();
  private nextSeq = 1;
  private nextJob = 1;
  /** The dead letters written by `fail`, by queue. */
  readonly deadLetters: { queue: string; seq: string; reason: string }[] = [];

  /** A subscription's queue and its cursor at the topic's newest event. */
  addSubscription(subscription: Subscription): void {
    this.ackDeadlines.set(subscription.queue, subscription.ackDeadlineSeconds);
    const events = this.topics.get(subscription.topic) ?? [];
    this.cursors.set(subscription.queue, {
      topic: subscription.topic,
      position: events.at(-1)?.seq ?? "0",
    });
  }

  publish(topic: string, ids: string[]): void {
    const events = this.topics.get(topic) ?? [];
    for (const id of ids) {
      events.push({
        seq: String(this.nextSeq++),
        topic,
        id,
        source: "s",
        type: "t",
        subject: "",
        time: undefined,
        attributes: {},
        orderingKey: "",
        dataTypeUrl: "",
        data: new Uint8Array(),
        deliverAfter: undefined,
        publishedAt: new Date(this.now),
      });
    }
    this.topics.set(topic, events);
  }

  async lease(queue: string, limit: number): Promise<Lease[]> {
    const due = [...this.jobs.values()]
      .filter(
        (j) =>
          j.queue === queue && (j.state === "created" || j.state === "retry") && j.startAfter <= this.now,
      )
      .sort((a, b) => a.order - b.order)
      .slice(0, limit);
    for (const job of due) {
      job.state = "active";
      job.expiresAt = this.now + (this.ackDeadlines.get(queue) ?? 60) * 1000;
    }
    return due.map((j) => ({ jobId: j.id, retryCount: j.retryCount, eventSeq: j.seq }));
  }

  async readCursor(queue: string, limit: number) {
    const cursor = this.cursors.get(queue);
    if (!cursor) return undefined;
    const events = (this.topics.get(cursor.topic) ?? [])
      .filter((e) => BigInt(e.seq) > BigInt(cursor.position))
      .slice(0, limit);
    return { position: cursor.position, events };
  }

  /** Holds every leased delivery as a job of its own, whatever `holding` asks: the port's answers are the same. */
  async advanceCursor(
    queue: string,
    from: string,
    to: string,
    deliveries: ScheduledDelivery[],
    _holding: LeaseHolding,
  ) {
    const cursor = this.cursors.get(queue);
    if (!cursor || cursor.position !== from) return undefined;
    cursor.position = to;
    const leased = new Map<string, Lease>();
    for (const d of deliveries) {
      const job: Job = {
        id: d.id ?? `job-${this.nextJob}`,
        queue,
        seq: d.seq,
        state: d.leased ? "active" : "created",
        retryCount: 0,
        startAfter: d.startAfter?.getTime() ?? this.now,
        expiresAt: this.now + (this.ackDeadlines.get(queue) ?? 60) * 1000,
        order: this.nextJob++,
      };
      this.jobs.set(job.id, job);
      if (d.leased) leased.set(d.seq, { jobId: job.id, retryCount: 0, eventSeq: d.seq });
    }
    return leased;
  }

  async queuesWithWork(queues: string[]): Promise<Set<string>> {
    const found = new Set<string>();
    for (const queue of queues) {
      const cursor = this.cursors.get(queue);
      const behind =
        cursor && (this.topics.get(cursor.topic) ?? []).some((e) => BigInt(e.seq) > BigInt(cursor.position));
      const due = [...this.jobs.values()].some(
        (j) =>
          j.queue === queue && (j.state === "created" || j.state === "retry") && j.startAfter <= this.now,
      );
      if (behind || due) found.add(queue);
    }
    return found;
  }

  /** The job a lease names, if it is still that attempt and in flight (the fence). */
  private held(queue: string, lease: Lease): Job | undefined {
    const job = this.jobs.get(lease.jobId);
    return job && job.queue === queue && job.state === "active" && job.retryCount === lease.retryCount
      ? job
      : undefined;
  }

  async complete(subscription: Subscription, leases: Lease[]): Promise<Set<string>> {
    const settled = new Set<string>();
    for (const lease of leases) {
      const job = this.held(subscription.queue, lease);
      if (!job) continue;
      if (subscription.ackedRetentionSeconds > 0) job.state = "completed";
      else this.jobs.delete(job.id);
      settled.add(job.id);
    }
    return settled;
  }

  async fail(subscription: Subscription, outcomes: FailureOutcome[]): Promise<Set<string>> {
    const settled = new Set<string>();
    for (const outcome of outcomes) {
      const job = this.held(subscription.queue, outcome.lease);
      if (!job) continue;
      settled.add(job.id);
      if ("deadLetter" in outcome) {
        this.jobs.delete(job.id);
        this.deadLetters.push({ queue: job.queue, seq: job.seq, reason: outcome.deadLetter });
        continue;
      }
      job.state = "retry";
      job.retryCount++;
      job.startAfter = this.now + outcome.retryAfterSeconds * 1000;
    }
    return settled;
  }

  async extend(queue: string, leases: Lease[], seconds: number): Promise<Map<string, Lease>> {
    const extended = new Map<string, Lease>();
    for (const lease of leases) {
      const job = this.held(queue, lease);
      if (!job) continue;
      job.expiresAt = this.now + seconds * 1000;
      extended.set(job.id, lease);
    }
    return extended;
  }

  async findLapsed(limit: number): Promise<{ subscription: string; lease: Lease }[]> {
    return [...this.jobs.values()]
      .filter((j) => j.state === "active" && j.expiresAt < this.now)
      .slice(0, limit)
      .map((j) => ({
        subscription: j.queue,
        lease: { jobId: j.id, retryCount: j.retryCount, eventSeq: j.seq },
      }));
  }

  async exclusively<T>(work: () => Promise<T>): Promise<T | undefined> {
    return work();
  }
}
