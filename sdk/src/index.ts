// @pgmesh/sdk: the public surface. Generated types are under "@pgmesh/sdk/gen/...".
export { type ConnectOptions, PgmeshClient, type SubscriptionPolicy } from "./client.ts";
