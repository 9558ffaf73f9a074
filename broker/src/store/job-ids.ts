// Ids of the pg-boss jobs a publish statement queues. pg-boss keys its job table by (name, id) and
// gives its own jobs random uuids, so each job of a statement lands on its own random leaf of that
// index: a publish of 500 dirties about 500 index pages, and a fetch of a queue's oldest 500 (its
// update is not HOT, so it adds an entry next to each old one) dirties them again. These ids start
// with the statement's time in milliseconds, as a UUIDv7 does, so one statement's jobs share a few
// adjacent leaves, and a fetch of the oldest jobs finds them together.
//
// The rest is 79 random bits from random(), the backend's own generator (seeded from the strong
// source; what the ids need is to differ, not to be unguessable): gen_random_uuid() reads the
// strong source at about 4 µs a call, 2 ms of a 500-job statement and 20 ms of a fan-out of it to
// ten subscriptions, against under 1 µs. Random, not a counter: pg-boss's key puts other
// queues' jobs to the right of a queue's newest, and rising keys inserted before a neighbour split
// its pages in half and leave them half empty (measured: pgstatindex's leaf density 51 % against
// 68 % for random ids and 90 % for rising keys at the index's right edge). Random within the
// statement's stretch fills them as random ids do. Ordered subscriptions keep their own rising ids
// (event-store.ts): their order within a statement is the ids' order.

/** The first 12 hex digits of the ids of a statement's jobs: milliseconds since the epoch. */
export function jobIdTimePrefix(now = Date.now()): string {
  return now.toString(16).padStart(12, "0");
}
