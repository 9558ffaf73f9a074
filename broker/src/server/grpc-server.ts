// Assembles the gRPC server: our three services, the standard health service and reflection.
// This folder is the only code that imports @grpc/grpc-js.
import { createServer, type Server as NetServer } from "node:net";
import { type handleUnaryCall, Server, ServerCredentials, type ServiceDefinition } from "@grpc/grpc-js";
import { AdminServiceService } from "@pgmesh/proto/pgmesh/v1/admin";
import { PublisherServiceService } from "@pgmesh/proto/pgmesh/v1/publisher";
import { SubscriberServiceService } from "@pgmesh/proto/pgmesh/v1/subscriber";
import { HealthImplementation } from "grpc-health-check";
import type { Admin } from "../delivery/admin.ts";
import type { DeliveryService } from "../delivery/delivery-service.ts";
import type { Publisher } from "../delivery/publishing.ts";
import type { AccessAdmin } from "../security/access-admin.ts";
import { type AccessHandlers, accessHandlers } from "./access-handler.ts";
import { adminHandlers } from "./admin-handler.ts";
import { type AccessInterceptorDeps, accessInterceptor } from "./auth/interceptor.ts";
import { accessFor } from "./auth/rpc-access.ts";
import { type ConsoleSources, consoleHandlers } from "./console-handlers.ts";
import { publisherHandlers } from "./publisher-handler.ts";
import { addReflection } from "./reflection.ts";
import { checkedRequests } from "./request-check.ts";
import type { ErrorLogger } from "./status.ts";
import { type SubscriberOptions, SubscriberStreams } from "./subscriber-handler.ts";
import type { RequestObserver } from "./unary.ts";

/** A connection must send its first bytes within this long (or the idle timeout, if shorter). */
const HANDSHAKE_TIMEOUT_MS = 10_000;
const SERVICES = ["pgmesh.v1.PublisherService", "pgmesh.v1.SubscriberService", "pgmesh.v1.AdminService"];

/**
 * The largest request the broker reads (grpc-js's default, made explicit because the README
 * promises it): a larger one is refused by grpc-js with RESOURCE_EXHAUSTED, "Received message
 * larger than max (N vs 4194304)". A Publish of events near the 1 MiB event limit holds three.
 */
export const MAX_REQUEST_BYTES = 4 * 1024 * 1024;

/**
 * The unary handlers of the pgmesh services by method name (camelCase), which the console's
 * Connect gateway calls too.
 */
export interface UnaryHandlers {
  publisher: Record<string, handleUnaryCall<unknown, unknown>>;
  admin: Record<string, handleUnaryCall<unknown, unknown>>;
}

export interface GrpcServerDeps {
  admin: Admin;
  /** What the console's RPCs read: the overview's snapshot, counters, this broker's streams. */
  console: ConsoleSources;
  publisher: Publisher;
  deliveries: DeliveryService;
  subscriber: SubscriberOptions;
  connections: { idleTimeoutMs: number; maxStreamsPerConnection: number };
  access: AccessAdmin;
  /** Authentication (when on), authorization and the audit log, in front of every handler. */
  security: Omit<AccessInterceptorDeps, "log" | "observe">;
  /** TLS; plaintext when absent. */
  credentials?: ServerCredentials;
  log: ErrorLogger;
  observe: RequestObserver;
}

export class GrpcServer {
  private readonly server: Server;
  private readonly health: HealthImplementation;
  private readonly streams: SubscriberStreams;
  private readonly credentials: ServerCredentials;
  private readonly idleTimeoutMs: number;
  private listener: NetServer | undefined;
  readonly handlers: UnaryHandlers;

  constructor(deps: GrpcServerDeps) {
    this.credentials = deps.credentials ?? ServerCredentials.createInsecure();
    this.idleTimeoutMs = deps.connections.idleTimeoutMs;
    this.server = new Server({
      interceptors: [accessInterceptor({ ...deps.security, log: deps.log, observe: deps.observe })],
      "grpc.max_receive_message_length": MAX_REQUEST_BYTES,
      // Detect dead peers on long-lived, idle subscriber streams.
      "grpc.keepalive_time_ms": 30_000,
      "grpc.keepalive_timeout_ms": 10_000,
      "grpc.keepalive_permit_without_calls": 1,
      "grpc.http2.min_ping_interval_without_data_ms": 5_000,
      // Idle connections (those that never send a request too) are closed, so that they cannot
      // pile up and hold the process's file descriptors; clients reconnect when they need to.
      "grpc.max_connection_idle_ms": deps.connections.idleTimeoutMs,
      "grpc.max_concurrent_streams": deps.connections.maxStreamsPerConnection,
    });
    this.streams = new SubscriberStreams(
      deps.admin,
      deps.deliveries,
      deps.subscriber,
      deps.log,
      deps.observe,
    );
    const access: AccessHandlers = accessHandlers(deps.access, deps.log, deps.observe);
    this.handlers = {
      publisher: publisherHandlers(deps.publisher, deps.log, deps.observe) as UnaryHandlers["publisher"],
      admin: {
        ...adminHandlers(deps.admin, deps.log, deps.observe, deps.subscriber.maxMessageBytes),
        ...consoleHandlers(deps.admin, deps.console, deps.log, deps.observe),
        ...access,
      } as UnaryHandlers["admin"],
    };
    this.add(checkedRequests(PublisherServiceService), this.handlers.publisher);
    this.add(checkedRequests(SubscriberServiceService, false), this.streams.handlers());
    this.add(checkedRequests(AdminServiceService), this.handlers.admin);
    this.health = new HealthImplementation(
      Object.fromEntries(["", ...SERVICES].map((s) => [s, "NOT_SERVING"])),
    );
    this.health.addToServer(this.server);
    addReflection(this.server);
  }

  // No method is served without an access rule (auth/rpc-access.ts).
  private add<Impl extends object>(service: ServiceDefinition, implementation: Impl): void {
    const unruled = Object.values(service)
      .map((method) => method.path)
      .filter((path) => !accessFor(path));
    if (unruled.length > 0) throw new Error(`no access rule for ${unruled.join(", ")} in auth/rpc-access.ts`);
    this.server.addService(service, implementation as never);
  }

  /**
   * Binds and starts serving; resolves to the bound address (port 0 picks a free port). The
   * broker accepts the TCP connections itself and hands them to grpc-js, so that it can close a
   * connection whose peer never sends a byte: grpc-js's idle timer asks such a connection to close
   * gracefully, which needs an HTTP/2 handshake that never comes, and the socket stays open.
   */
  async listen(address: string): Promise<string> {
    const injector = this.server.createConnectionInjector(this.credentials);
    const handshakeMs = Math.min(HANDSHAKE_TIMEOUT_MS, this.idleTimeoutMs);
    this.listener = createServer((socket) => {
      const timer = setTimeout(() => {
        // destroy() leaves a socket that http2 has taken over open; a reset closes it.
        if (socket.bytesRead === 0) socket.resetAndDestroy();
      }, handshakeMs);
      timer.unref();
      socket.once("close", () => clearTimeout(timer));
      injector.injectConnection(socket);
    });
    const colon = address.lastIndexOf(":");
    const host = address.slice(0, colon);
    const listener = this.listener;
    const port = await new Promise<number>((resolve, reject) => {
      listener.once("error", reject);
      listener.listen(Number(address.slice(colon + 1)), host.replace(/^\[(.*)\]$/, "$1"), () => {
        const bound = listener.address();
        resolve(typeof bound === "object" && bound ? bound.port : 0);
      });
    });
    for (const service of ["", ...SERVICES]) this.health.setStatus(service, "SERVING");
    return `${host}:${port}`;
  }

  /** First step of a graceful stop: report NOT_SERVING and refuse new subscriber streams. */
  stopAccepting(): void {
    for (const service of ["", ...SERVICES]) this.health.setStatus(service, "NOT_SERVING");
    this.streams.stopAccepting();
  }

  /** Ends the subscriber streams (releasing their deliveries), then lets unary calls finish. */
  async shutdown(graceMs: number): Promise<void> {
    this.listener?.close();
    await this.streams.closeAll();
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
  }

  /** Ends this broker's streams on a deleted subscription with NOT_FOUND. */
  subscriptionDeleted(subscription: { name: string; queue: string }): void {
    // Also the deleting broker's own streams: the NOTIFY reaches every listener.
    void this.streams.endSubscription(subscription);
  }
}
