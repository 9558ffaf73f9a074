// The console's client: AdminService and PublisherService over Connect, generated from the same
// proto as every other client (console/src/gen, by buf), on the console's own origin. The token the
// operator signed in with goes in the `authorization` header, as a gRPC client sends it.
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { AdminService } from "./gen/pgmesh/v1/admin_pb.ts";
import { PublisherService } from "./gen/pgmesh/v1/publisher_pb.ts";

const TOKEN_KEY = "pgmesh.token";

/** Kept for the tab's life only: closing the tab signs out. */
export const session = {
  get token(): string | undefined {
    return sessionStorage.getItem(TOKEN_KEY) ?? undefined;
  },
  set token(value: string | undefined) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
};

const withToken: Interceptor = (next) => (request) => {
  const token = session.token;
  if (token) request.header.set("authorization", `Bearer ${token}`);
  return next(request);
};

const transport = createConnectTransport({
  baseUrl: location.origin,
  interceptors: [withToken],
  // Binary Protobuf: payloads are bytes, and the generated code decodes it without JSON names.
  useBinaryFormat: true,
});

export const admin = createClient(AdminService, transport);
export const publisher = createClient(PublisherService, transport);

/** The broker's own words for a refusal ("permission denied: ... may not manage ..."). */
export function reason(error: unknown): string {
  if (error instanceof ConnectError) {
    if (error.code === Code.Unavailable || error.code === Code.Unknown)
      return `the broker is not reachable (${error.rawMessage || "connection failed"})`;
    return error.rawMessage;
  }
  return error instanceof Error ? error.message : String(error);
}

export function codeOf(error: unknown): Code | undefined {
  return error instanceof ConnectError ? error.code : undefined;
}

export { Code };
