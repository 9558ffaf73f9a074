// The one place where calls are authenticated, authorized and audited, in front of every handler:
// the caller is identified from the call's metadata (a bearer token) or its TLS client
// certificate, each request message is checked against the RPC's entry in rpc-access.ts, what the
// caller may read is handed to the handlers (caller.ts: lists show no more), and admin actions
// are written to the audit log with their result. Streams are watched while open and end when
// their caller's access does. With authentication off, calls pass as "anonymous" and are still
// audited.
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
import type { Authenticator, Identity } from "../../security/authenticator.ts";
import type { OpenCalls, WatchedCall } from "../../security/open-calls.ts";
import type { AuditEntry } from "../../security/ports.ts";
import { type ErrorLogger, toServiceError } from "../status.ts";
import type { RequestObserver } from "../unary.ts";
import { authorize, authorizeAll, DENY_UNKNOWN, readerFor } from "./access-check.ts";
import { auditCredential, type ClientCertificate } from "./audit-credential.ts";
import { setReader } from "./caller.ts";
import { accessFor, describeNeeds, type Need } from "./rpc-access.ts";

type HandlerListener = Parameters<ServerInterceptingCall["start"]>[0];
type SentStatus = Parameters<ServerInterceptingCallInterface["sendStatus"]>[0];

export interface AccessInterceptorDeps {
  /** Absent when authentication is off. */
  authenticator: Authenticator | undefined;
  /** The open streams' watch (with the authenticator): they end when their access does. */
  openCalls: OpenCalls | undefined;
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

/**
 * Where a call stands with its caller. A message gets through only while the call is admitted:
 * while its caller is being authenticated, or checked again after a change to principals or
 * tokens, messages wait for the verdict, and once the call has ended they are dropped (so an ack
 * sent after a revocation was heard is never settled).
 */
type CallState =
  | { phase: "authenticating" }
  /** `identity` is undefined when authentication is off. */
  | { phase: "admitted"; identity: Identity | undefined }
  | { phase: "rechecking"; identity: Identity; settled: Promise<void> }
  | { phase: "ended" };

export function accessInterceptor(deps: AccessInterceptorDeps): ServerInterceptor {
  return (method, next: ServerInterceptingCallInterface) => {
    const access = accessFor(method.path) ?? DENY_UNKNOWN;
    if (access.kind === "public") return new ServerInterceptingCall(next);
    const name = method.path.slice(method.path.lastIndexOf("/") + 1);
    const audited = access.kind === "checked" && access.audited;
    // Streams stay open: they are watched and checked again while they do (security/open-calls.ts).
    const long = method.requestStream || method.responseStream;
    let state: CallState = deps.authenticator
      ? { phase: "authenticating" }
      : { phase: "admitted", identity: undefined };
    /** Who the audit log names: the principal once authenticated, "anonymous" with authentication off. */
    let who: string | undefined;
    /** The credential the audit log names (audit-credential.ts). */
    let credential = "";
    let resource = "";
    /** Everything this call's messages were allowed so far, checked again when access changes. */
    const granted: Need[] = [];
    let watched: WatchedCall | undefined;
    /** Messages that arrived while no verdict was at hand, in arrival order (see release). */
    const held: (() => void)[] = [];

    // Lets the held messages go on, in order, once the call is admitted (or drops them once it
    // has ended); a message that arrives while others are held queues behind them.
    const release = () => {
      while (held.length > 0 && (state.phase === "admitted" || state.phase === "ended")) {
        (held.shift() as () => void)();
      }
    };

    const end = () => {
      state = { phase: "ended" };
      if (watched) deps.openCalls?.remove(watched);
      release();
    };

    const refuse = (error: unknown) => {
      if (state.phase === "ended") return;
      end();
      const serviceError = toServiceError(error, deps.log, name);
      deps.observe(name, status[serviceError.code ?? status.INTERNAL]);
      call.sendStatus({
        code: serviceError.code ?? status.INTERNAL,
        details: serviceError.details ?? "",
        metadata: new Metadata(),
      });
      // The handler's side is cancelled too: a stream's session then releases its leases at once.
      call.handlerListener?.onCancel();
    };

    const admit = (identity: Identity) => {
      if (state.phase === "ended") return;
      state = { phase: "admitted", identity };
      who = identity.principal.name;
      credential = auditCredential(identity.credential, clientCertificate(next));
    };

    // A verdict on a call already admitted: carry on with the principal as it is now, if it may
    // still do everything the call was allowed; end it otherwise. A refusal ends the call whenever
    // it comes; a pass admits it only if no later check has begun meanwhile (that one decides).
    const recheck = (verdict: Promise<Identity>) => {
      if (state.phase !== "admitted" && state.phase !== "rechecking") return;
      const identity = state.identity as Identity;
      const latest = () => state.phase === "rechecking" && state.settled === settled;
      const settled: Promise<void> = verdict.then(
        (now) => {
          if (state.phase === "ended") return;
          try {
            authorizeAll(now.principal, granted);
          } catch (error) {
            refuse(error);
            return;
          }
          if (latest()) {
            admit(now);
            release();
          }
        },
        (error: unknown) => {
          if (error instanceof MeshError && error.code === "unauthenticated") refuse(error);
          // The database could not say (an outage): the stream carries on as it was; the next
          // change or the periodic check decides.
          else if (latest()) {
            admit(identity);
            release();
          }
        },
      );
      state = { phase: "rechecking", identity, settled };
    };

    const listener = new ServerListenerBuilder()
      .withOnReceiveMetadata((metadata, pass) => {
        const certificate = clientCertificate(next);
        const certificateName = certificate?.commonName;
        const authenticator = deps.authenticator;
        if (!authenticator) {
          who = certificateName ? `anonymous (certificate ${certificateName})` : "anonymous";
          credential = auditCredential(undefined, certificate);
          setReader(metadata, readerFor(undefined));
          pass(metadata);
          return;
        }
        authenticator
          .authenticate({
            authorization: authorizationHeader(metadata),
            certificateName,
            peerAddress: next.getConnectionInfo().remoteAddress,
          })
          .then((identity) => {
            admit(identity);
            if (state.phase !== "admitted") return; // cancelled meanwhile
            setReader(metadata, readerFor(identity));
            if (long && deps.openCalls) {
              watched = { credential: identity.credential, recheck };
              deps.openCalls.add(watched);
            }
            pass(metadata);
            release();
          }, refuse);
      })
      .withOnReceiveMessage((message, pass) => {
        const decide = () => {
          if (state.phase !== "admitted") return;
          try {
            if (access.kind === "checked") {
              const needs = access.needs(message as never);
              if (needs.length > 0) resource = describeNeeds(needs);
              if (state.identity) authorize(state.identity.principal, access, needs, message);
              granted.push(...needs);
            }
          } catch (error) {
            refuse(error);
            return;
          }
          pass(message);
        };
        // grpc-js reads no message before the handler has the metadata, but a message must never
        // get past without its caller known (or re-checked), whatever the library's order.
        if (state.phase === "admitted" && held.length === 0) decide();
        else if (state.phase !== "ended") held.push(decide);
      })
      .withOnCancel(() => end())
      .build();

    const responder = new ResponderBuilder()
      .withStart((start) => start(listener))
      .withSendMessage((message, pass) => {
        if (state.phase !== "ended") pass(message);
      })
      .withSendStatus((sent: SentStatus, pass) => {
        if (watched) deps.openCalls?.remove(watched);
        if (!audited || who === undefined) {
          // A call that failed authentication is nobody's admin action: it is counted in the
          // metrics by code, not written to the audit log (which an anonymous flood could fill).
          pass(sent);
          return;
        }
        deps
          .audit({
            principal: who,
            credential,
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

function authorizationHeader(metadata: Metadata): string | undefined {
  const value = metadata.get("authorization")[0];
  return typeof value === "string" ? value : undefined;
}

/** The verified client certificate of the call's connection, if any. */
function clientCertificate(call: ServerInterceptingCallInterface): ClientCertificate | undefined {
  const certificate = call.getAuthContext().sslPeerCertificate;
  if (!certificate?.fingerprint256) return undefined;
  const commonName = certificate.subject?.CN;
  return {
    commonName: typeof commonName === "string" && commonName ? commonName : undefined,
    fingerprint256: certificate.fingerprint256,
  };
}
