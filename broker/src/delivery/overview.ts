// The console's overview: every topic and subscription with the numbers of the last gauge refresh,
// searched and paged in memory, so that polling it costs the database nothing whatever the number
// of consoles open. Only names the caller may read are counted or shown.
import { invalidArgument } from "./errors.ts";

export interface SubscriptionNumbers {
  subscription: string;
  topic: string;
  backlog: number;
  cursorLag: number;
  inFlight: number;
  oldestAgeSeconds: number;
  deadLetters: number;
}

/** What the gauge refresh read last (metrics/gauges.ts). */
export interface OverviewSnapshot {
  refreshedAt: Date;
  topics: { name: string; retentionSeconds: number }[];
  subscriptions: SubscriptionNumbers[];
}

/** Counters of this broker since it started (read from its Prometheus counters), for rates. */
export interface TrafficCounters {
  /** Events published, by topic. */
  published: Map<string, number>;
  /** Deliveries sent, by subscription. */
  delivered: Map<string, number>;
  /** Deliveries acked, by subscription. */
  acked: Map<string, number>;
}

export interface SummaryPage<T> {
  items: T[];
  nextPageToken: string;
  totalSize: number;
}

export const EMPTY_SNAPSHOT: OverviewSnapshot = { refreshedAt: new Date(0), topics: [], subscriptions: [] };

const DEFAULT_PAGE_SIZE = 100;
const MAX_PAGE_SIZE = 1000;

/**
 * The page of `items` (sorted by name) whose names, or other searched texts, contain `search`
 * (case-insensitive) and that the caller may read. The token is the offset of the next page in
 * that selection: a page may repeat or skip a row that appeared or went meanwhile, as any live
 * listing would.
 */
export function summaryPage<T>(
  items: T[],
  texts: (item: T) => string[],
  name: (item: T) => string,
  visible: (name: string) => boolean,
  request: { search: string; pageSize: number; pageToken: string },
): SummaryPage<T> {
  if (request.pageSize > MAX_PAGE_SIZE) {
    throw invalidArgument(`page_size is at most ${MAX_PAGE_SIZE}, got ${request.pageSize}`);
  }
  if (request.pageToken && !/^[0-9]{1,9}$/.test(request.pageToken)) {
    throw invalidArgument("page_token is not one this server returned");
  }
  const size = request.pageSize || DEFAULT_PAGE_SIZE;
  const needle = request.search.trim().toLowerCase();
  const selected = items
    .filter((item) => visible(name(item)))
    .filter((item) => !needle || texts(item).some((text) => text.toLowerCase().includes(needle)))
    .sort((a, b) => (name(a) < name(b) ? -1 : name(a) > name(b) ? 1 : 0));
  const offset = Number(request.pageToken || "0");
  const page = selected.slice(offset, offset + size);
  const next = offset + size < selected.length ? String(offset + size) : "";
  return { items: page, nextPageToken: next, totalSize: selected.length };
}
