// Rates from the broker's counters: each poll gives a counter's value at the broker's refresh time;
// the rate is the change over the time between two readings. Keeps a short history for the charts.

export interface Reading {
  /** The broker's refresh time (ms). */
  at: number;
  value: number;
}

const HISTORY = 30;

export class RateTracker {
  private readonly readings = new Map<string, Reading[]>();

  /** Records a counter reading; a repeat of the same refresh time is ignored. */
  record(name: string, reading: Reading): void {
    const list = this.readings.get(name) ?? [];
    const last = list.at(-1);
    if (last && reading.at <= last.at) return;
    // A counter that went down was reset (the broker restarted): start again from here.
    if (last && reading.value < last.value) list.length = 0;
    list.push(reading);
    if (list.length > HISTORY + 1) list.shift();
    this.readings.set(name, list);
  }

  /** Per second, over the last two readings; 0 before there are two. */
  rate(name: string): number {
    const list = this.readings.get(name) ?? [];
    return rateBetween(list.at(-2), list.at(-1));
  }

  /** The rate between each pair of readings, oldest first (for a sparkline). */
  history(name: string): number[] {
    const list = this.readings.get(name) ?? [];
    return list.slice(1).map((reading, i) => rateBetween(list[i], reading));
  }
}

export function rateBetween(before: Reading | undefined, after: Reading | undefined): number {
  if (!before || !after || after.at <= before.at) return 0;
  return Math.max(0, after.value - before.value) / ((after.at - before.at) / 1000);
}

/** A short history of plain values (e.g. backlog) per name, for sparklines. */
export class ValueHistory {
  private readonly values = new Map<string, { at: number; value: number }[]>();

  record(name: string, at: number, value: number): void {
    const list = this.values.get(name) ?? [];
    const last = list.at(-1);
    if (last && at <= last.at) return;
    list.push({ at, value });
    if (list.length > HISTORY) list.shift();
    this.values.set(name, list);
  }

  history(name: string): number[] {
    return (this.values.get(name) ?? []).map((v) => v.value);
  }
}
