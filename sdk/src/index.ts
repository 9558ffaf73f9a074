// @pgmesh/sdk: the public surface. Generated wire types are under "@pgmesh/sdk/gen/...".
export { type ConnectOptions, PgmeshClient, type SubscriptionPolicy } from "./client.ts";
export { defineEvent, type EventType, type MessageCodec, TYPE_URL_PREFIX } from "./event-type.ts";
