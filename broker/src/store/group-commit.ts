// Group commit: requests that arrive while earlier ones are committing share the next transaction.
// A commit (its WAL flush) costs the same for one event as for a thousand, so a service that
// publishes one event per request pays a fraction of a commit per event under load, and nothing
// extra when idle (a request that finds a free slot goes at once, alone).
//
// The work for a group runs as one unit. When it fails as a whole (a statement error, a deadlock)
// every request of the group is retried alone, so one bad request fails only itself.

export type GroupResult<R> = { ok: true; value: R } | { ok: false; error: unknown };

export interface GroupCommitOptions {
  /** Groups committing at once: one fills while another flushes. */
  maxInFlight: number;
  /** Upper bound on a group's summed weight (events), so one transaction stays short. */
  maxWeight: number;
}

interface Pending<T, R> {
  item: T;
  weight: number;
  resolve: (value: R) => void;
  reject: (error: unknown) => void;
}

export class GroupCommit<T, R> {
  private readonly queue: Pending<T, R>[] = [];
  private inFlight = 0;

  constructor(
    /** Runs one group in one transaction; the result per item, in order. */
    private readonly run: (items: T[]) => Promise<GroupResult<R>[]>,
    private readonly options: GroupCommitOptions,
  ) {}

  submit(item: T, weight: number): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ item, weight, resolve, reject });
      this.flush();
    });
  }

  /** Requests waiting for a slot (for tests and metrics). */
  get waiting(): number {
    return this.queue.length;
  }

  private flush(): void {
    while (this.inFlight < this.options.maxInFlight && this.queue.length > 0) {
      const group = this.takeGroup();
      this.inFlight++;
      void this.commit(group).finally(() => {
        this.inFlight--;
        this.flush();
      });
    }
  }

  /** The oldest requests up to maxWeight; always at least one, however heavy. */
  private takeGroup(): Pending<T, R>[] {
    let weight = 0;
    let count = 0;
    for (const pending of this.queue) {
      if (count > 0 && weight + pending.weight > this.options.maxWeight) break;
      weight += pending.weight;
      count++;
    }
    return this.queue.splice(0, count);
  }

  private async commit(group: Pending<T, R>[]): Promise<void> {
    let results: GroupResult<R>[];
    try {
      results = await this.run(group.map((p) => p.item));
    } catch (error) {
      if (group.length === 1) {
        group[0]?.reject(error);
        return;
      }
      // Isolate the culprit: each request alone, one after another (they were already waiting).
      for (const pending of group) await this.commit([pending]);
      return;
    }
    group.forEach((pending, index) => {
      const result = results[index];
      if (!result) pending.reject(new Error("group commit returned no result for a request"));
      else if (result.ok) pending.resolve(result.value);
      else pending.reject(result.error);
    });
  }
}
