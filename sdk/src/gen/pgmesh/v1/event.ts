// Not generated: the wire code lives in @pgmesh/proto. subscriber.ts still imports this path; it goes
// once subscriber.ts imports "@pgmesh/proto/pgmesh/v1/event" itself.
export * from "@pgmesh/proto/pgmesh/v1/event";
