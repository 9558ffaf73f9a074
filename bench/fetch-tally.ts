// How long fetches from a queue take, for (e)'s target of one fetch <= 20 ms at a backlog of a
// million. The peers' drivers time their own fetch calls; pgmesh's broker reports its fetches in
// the pgmesh_fetch_duration_seconds histogram, read here from its /metrics.

/** A fetch slower than this misses the target. */
export const SLOW_FETCH_SECONDS = 0.02;

/** Fetches so far: how many, their summed time, and how many were slow. Cumulative. */
export interface FetchTally {
  count: number;
  seconds: number;
  slow: number;
}

export const noFetches = (): FetchTally => ({ count: 0, seconds: 0, slow: 0 });

/** What happened between two tallies. */
export function fetchesBetween(before: FetchTally, after: FetchTally): FetchTally {
  return {
    count: after.count - before.count,
    seconds: after.seconds - before.seconds,
    slow: after.slow - before.slow,
  };
}

/** Times the fetches of a peer's consumer. */
export class FetchTimer {
  private readonly tally = noFetches();

  async time<T>(fetch: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      return await fetch();
    } finally {
      const seconds = (performance.now() - started) / 1000;
      this.tally.count++;
      this.tally.seconds += seconds;
      if (seconds > SLOW_FETCH_SECONDS) this.tally.slow++;
    }
  }

  snapshot(): FetchTally {
    return { ...this.tally };
  }
}

/**
 * The fetches of these subscriptions, from the broker's Prometheus text: count and sum of the
 * histogram, and as slow every fetch above the 20 ms bucket (one of the histogram's bounds).
 */
export function fetchTallyFromMetrics(text: string, subscriptions: string[]): FetchTally {
  const wanted = new Set(subscriptions);
  const tally = noFetches();
  let fast = 0;
  for (const line of text.split("\n")) {
    const match = /^pgmesh_fetch_duration_seconds_(count|sum|bucket)\{([^}]*)\} (\S+)$/.exec(line);
    if (!match) continue;
    const [, part, labelText, value] = match as unknown as [string, string, string, string];
    const labels = Object.fromEntries(
      [...labelText.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1] as string, m[2] as string]),
    );
    if (!wanted.has(labels.subscription ?? "")) continue;
    if (part === "count") tally.count += Number(value);
    else if (part === "sum") tally.seconds += Number(value);
    else if (Number(labels.le) === SLOW_FETCH_SECONDS) fast += Number(value);
  }
  tally.slow = tally.count - fast;
  return tally;
}
