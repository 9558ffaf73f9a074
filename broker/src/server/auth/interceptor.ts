// The one place where calls are authenticated, authorized and audited, in front of every handler:
// the caller is identified from the call's metadata (a bearer token) or its TLS client
// certificate, each request message is checked against the RPC's entry in rpc-access.ts, list
// responses are trimmed to what the caller may read, and admin actions are written to the audit
// log with their result. With authentication off, calls pass as "anonymous" and are still audited.
import {
  Metadata,
  ResponderBuilder,
  ServerInterceptingCall,
  type ServerInterceptingCallInterface,
  type ServerInterceptor,
  ServerListenerBuilder,
  status,
} from "@grpc/grpc-js";
import { MeshError } from "../../delivery/errors.ts";
import type { Authenticator } from "../../security/authenticator.ts";
import { allows, mayPublishAs, type Principal } from "../../security/grants.ts";
import type { AuditEntry } from "../../security/ports.ts";
import { type ErrorLogger, toServiceError } from "../status.ts";
import type { RequestObserver } from "../unary.ts";
import { accessFor, describeNeeds, type Need, type RpcAccess } from "./rpc-access.ts";

type HandlerListener = Parameters<ServerInterceptingCall["start"]>[0];
type SentStatus = Parameters<ServerInterceptingCallInterface["sendStatus"]>[0];

export interface AccessInterceptorDeps {
  /** Absent when authentication is off. */
  authenticator: Authenticator | undefined;
  audit: (entry: AuditEntry) => Promise<void>;
  log: ErrorLogger;
  /** Told about calls refused here (the handlers report the others). */
  observe: RequestObserver;
}

// Remembers the handler's listener, so a refused stream can be cancelled on the handler's side
// (its session then cleans up at once instead of waiting for its open timeout).
class AccessCall extends ServerInterceptingCall {
  handlerListener: HandlerListener | undefined;

  override start(listener: HandlerListener): void {
    this.handlerListener = listener;
    super.start(listener);
  }
}

export function accessInterceptor(deps: AccessInterceptorDeps): ServerInterceptor {
  return (method, next: ServerInterceptingCallInterface) => {
    const access = accessFor(method.path) ?? DENY_UNKNOWN;
    if (access.kind === "public") return new ServerInterceptingCall(next);
    const name = method.path.slice(method.path.lastIndexOf("/") + 1);
    const audited = access.kind === "checked" && access.audited;
    let principal: Principal | undefined;
    let who = "anonymous";
    let resource = "";
    let refused = false;
    let authentication: Promise<void> | undefined;

    const refuse = (error: unknown) => {
      if (refused) return;
      refused = true;
      const serviceError = toServiceError(error, deps.log, name);
      deps.observe(name, status[serviceError.code ?? status.INTERNAL]);
      call.sendStatus({
        code: serviceError.code ?? status.INTERNAL,
        details: serviceError.details ?? "",
        metadata: new Metadata(),
      });
      call.handlerListener?.onCancel();
    };

    const listener = new ServerListenerBuilder()
      .withOnReceiveMetadata((metadata, pass) => {
        const certificateName = clientCertificateName(next);
        if (!deps.authenticator) {
          who = certificateName ? `anonymous (certificate ${certificateName})` : "anonymous";
          pass(metadata);
          return;
        }
        authentication = deps.authenticator
          .authenticate({ token: bearerToken(metadata), certificateName })
          .then((p) => {
            principal = p;
            who = p.name;
            pass(metadata);
          }, refuse);
      })
      .withOnReceiveMessage((message, pass) => {
        const check = () => {
          if (refused) return;
          try {
            if (access.kind === "checked") {
              const needs = access.needs(message as never);
              if (needs.length > 0) resource = describeNeeds(needs);
              if (principal) authorize(principal, access, needs, message);
            }
          } catch (error) {
            refuse(error);
            return;
          }
          pass(message);
        };
        // grpc-js reads no message before the handler has the metadata, but a message must never
        // get past without its caller known, whatever the library's order.
        if (deps.authenticator && !principal) void authentication?.then(check);
        else check();
      })
      .build();

    const responder = new ResponderBuilder()
      .withStart((start) => start(listener))
      .withSendMessage((message, pass) => {
        const reader = principal;
        if (access.kind === "checked" && access.filter && reader) {
          pass(access.filter(message as never, (n) => allows(reader, "read", n)));
          return;
        }
        pass(message);
      })
      .withSendStatus((sent: SentStatus, pass) => {
        if (!audited || (deps.authenticator && !principal)) {
          // A call that failed authentication is nobody's admin action: it is counted in the
          // metrics by code, not written to the audit log (which an anonymous flood could fill).
          pass(sent);
          return;
        }
        deps
          .audit({
            principal: who,
            method: name,
            resource,
            result: status[sent.code],
            detail: sent.code === status.OK ? "" : (sent.details ?? ""),
          })
          .catch((error: unknown) => deps.log(`writing the audit log for ${name}`, error))
          .finally(() => pass(sent));
      })
      .build();

    const call = new AccessCall(next, responder);
    return call;
  };
}

function authorize(
  principal: Principal,
  access: RpcAccess & { kind: "checked" },
  needs: Need[],
  message: unknown,
) {
  for (const need of needs) {
    if (!allows(principal, need.permission, need.name)) {
      throw new MeshError(
        "permission_denied",
        `permission denied: ${principal.name} may not ${need.permission} ${need.kind} ${JSON.stringify(need.name)}`,
      );
    }
  }
  for (const source of access.sources?.(message as never) ?? []) {
    if (!mayPublishAs(principal, source)) {
      throw new MeshError(
        "permission_denied",
        `permission denied: ${principal.name} may not publish events with source ${JSON.stringify(source)}`,
      );
    }
  }
}

const DENY_UNKNOWN: RpcAccess = {
  kind: "checked",
  needs: () => [{ permission: "admin", kind: "principal", name: "*" }],
  audited: false,
};

function bearerToken(metadata: Metadata): string | undefined {
  const value = metadata.get("authorization")[0];
  if (typeof value !== "string") return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(value);
  // A malformed header is still an attempt: it must fail, not fall back to the certificate.
  return match ? match[1] : value;
}

function clientCertificateName(call: ServerInterceptingCallInterface): string | undefined {
  const certificate = call.getAuthContext().sslPeerCertificate;
  const commonName = certificate?.subject?.CN;
  return typeof commonName === "string" && commonName ? commonName : undefined;
}
