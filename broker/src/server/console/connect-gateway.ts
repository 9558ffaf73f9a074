// AdminService and PublisherService over the Connect protocol (connect-node), for the web console.
// A Connect call is a gRPC call in all but its framing: its request goes through the same byte
// check and decoder (request-check.ts), the same authentication (the one Authenticator, with its
// failure limits), the same rules and permission check (auth/rpc-access.ts, auth/access-check.ts),
// the same handler the gRPC server runs, and the same audit log. Nothing here decides access.
import { type DescMethod, type DescService, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  createContextKey,
  type HandlerContext,
} from "@connectrpc/connect";
import { Metadata, type ServiceDefinition, type ServiceError, status } from "@grpc/grpc-js";
import { AdminServiceService } from "@pgmesh/proto/pgmesh/v1/admin";
import { PublisherServiceService } from "@pgmesh/proto/pgmesh/v1/publisher";
import type { Authenticator, Identity } from "../../security/authenticator.ts";
import type { AuditEntry } from "../../security/ports.ts";
import { authorize, DENY_UNKNOWN, readerFor } from "../auth/access-check.ts";
import { auditCredential, type ClientCertificate } from "../auth/audit-credential.ts";
import { setReader } from "../auth/caller.ts";
import { accessFor, describeNeeds } from "../auth/rpc-access.ts";
import type { UnaryHandlers } from "../grpc-server.ts";
import { checkedRequests, serviceDescriptor } from "../request-check.ts";
import { type ErrorLogger, toServiceError } from "../status.ts";
import type { RequestObserver } from "../unary.ts";

/** Who is at the other end of the HTTP connection, as the console server saw it. */
export interface Peer {
  address: string | undefined;
  /** The client certificate the TLS handshake verified. */
  certificate: ClientCertificate | undefined;
}

export const PEER = createContextKey<Peer>({ address: undefined, certificate: undefined });

export interface GatewayDeps {
  handlers: UnaryHandlers;
  /** Absent when authentication is off. */
  authenticator: Authenticator | undefined;
  audit: (entry: AuditEntry) => Promise<void>;
  log: ErrorLogger;
  observe: RequestObserver;
}

type Handler = UnaryHandlers["admin"][string];

/** Adds every unary method of the two services to the router, each carried to its gRPC handler. */
export function consoleRoutes(deps: GatewayDeps): (router: ConnectRouter) => void {
  return (router) => {
    for (const [service, definition, handlers] of [
      [
        serviceDescriptor("pgmesh.v1.AdminService"),
        checkedRequests(AdminServiceService),
        deps.handlers.admin,
      ],
      [
        serviceDescriptor("pgmesh.v1.PublisherService"),
        checkedRequests(PublisherServiceService),
        deps.handlers.publisher,
      ],
    ] as [DescService, ServiceDefinition, Record<string, Handler>][]) {
      for (const method of service.methods) {
        const grpcMethod = definition[method.localName];
        const handler = handlers[method.localName];
        if (!grpcMethod || !handler || method.methodKind !== "unary") {
          throw new Error(`the console cannot serve ${service.typeName}/${method.name}`);
        }
        router.rpc(method as DescMethod & { methodKind: "unary" }, (request, context) =>
          call(deps, method, grpcMethod, handler, toBinary(method.input, request), context),
        );
      }
    }
  };
}

async function call(
  deps: GatewayDeps,
  method: DescMethod,
  grpcMethod: ServiceDefinition[string],
  handler: Handler,
  requestBytes: Uint8Array,
  context: HandlerContext,
) {
  const path = grpcMethod.path;
  const name = method.name;
  const access = accessFor(path) ?? DENY_UNKNOWN;
  const peer = context.values.get(PEER);
  /** Who the audit log names; unset until authenticated (a failed authentication is not audited). */
  let who: string | undefined;
  /** The credential the audit log names (audit-credential.ts). */
  let credential = "";
  let resource = "";
  let refused = true;
  let outcome: Partial<ServiceError> = { code: status.OK };
  try {
    let identity: Identity | undefined;
    if (deps.authenticator) {
      identity = await deps.authenticator.authenticate({
        authorization: context.requestHeader.get("authorization") ?? undefined,
        certificateName: peer.certificate?.commonName,
        peerAddress: peer.address,
      });
      who = identity.principal.name;
      credential = auditCredential(identity.credential, peer.certificate);
    } else {
      const name = peer.certificate?.commonName;
      who = name ? `anonymous (certificate ${name})` : "anonymous";
      credential = auditCredential(undefined, peer.certificate);
    }
    const message: unknown = grpcMethod.requestDeserialize(Buffer.from(requestBytes));
    if (access.kind === "checked") {
      const needs = access.needs(message as never);
      if (needs.length > 0) resource = describeNeeds(needs);
      if (identity) authorize(identity.principal, access, needs, message);
    }
    const metadata = new Metadata();
    setReader(metadata, readerFor(identity));
    refused = false;
    // The handler reports the call to the metrics itself, as it does for gRPC.
    const response = await new Promise<unknown>((resolve, reject) =>
      handler({ request: message, metadata } as never, (error, value) =>
        error ? reject(error) : resolve(value),
      ),
    );
    return fromBinary(method.output, grpcMethod.responseSerialize(response));
  } catch (error) {
    outcome = refused ? toServiceError(error, deps.log, name) : (error as Partial<ServiceError>);
    if (refused) deps.observe(name, status[outcome.code ?? status.INTERNAL]);
    throw new ConnectError(outcome.details ?? "", (outcome.code ?? Code.Internal) as Code);
  } finally {
    if (access.kind === "checked" && access.audited && who !== undefined) {
      await deps
        .audit({
          principal: who,
          credential,
          method: name,
          resource,
          result: status[outcome.code ?? status.INTERNAL],
          detail: outcome.code === status.OK ? "" : (outcome.details ?? ""),
        })
        .catch((error: unknown) => deps.log(`writing the audit log for ${name}`, error));
    }
  }
}
