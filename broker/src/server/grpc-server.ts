// Assembles the gRPC server: our three services, the standard health service and reflection.
// This folder is the only code that imports @grpc/grpc-js.
import { Server, ServerCredentials } from "@grpc/grpc-js";
import { AdminServiceService } from "@pgmesh/sdk/gen/pgmesh/v1/admin";
import { PublisherServiceService } from "@pgmesh/sdk/gen/pgmesh/v1/publisher";
import { SubscriberServiceService } from "@pgmesh/sdk/gen/pgmesh/v1/subscriber";
import { HealthImplementation } from "grpc-health-check";
import type { Admin } from "../delivery/admin.ts";
import type { DeliveryService } from "../delivery/delivery-service.ts";
import type { Publisher } from "../delivery/publishing.ts";
import { adminHandlers } from "./admin-handler.ts";
import { publisherHandlers } from "./publisher-handler.ts";
import { addReflection } from "./reflection.ts";
import { checkedRequests } from "./request-check.ts";
import type { ErrorLogger } from "./status.ts";
import { type SubscriberOptions, SubscriberStreams } from "./subscriber-handler.ts";
import type { RequestObserver } from "./unary.ts";

const SERVICES = ["pgmesh.v1.PublisherService", "pgmesh.v1.SubscriberService", "pgmesh.v1.AdminService"];

export interface GrpcServerDeps {
  admin: Admin;
  publisher: Publisher;
  deliveries: DeliveryService;
  subscriber: SubscriberOptions;
  log: ErrorLogger;
  observe: RequestObserver;
}

export class GrpcServer {
  private readonly server: Server;
  private readonly health: HealthImplementation;
  private readonly streams: SubscriberStreams;

  constructor(deps: GrpcServerDeps) {
    this.server = new Server({
      // Detect dead peers on long-lived, idle subscriber streams.
      "grpc.keepalive_time_ms": 30_000,
      "grpc.keepalive_timeout_ms": 10_000,
      "grpc.keepalive_permit_without_calls": 1,
      "grpc.http2.min_ping_interval_without_data_ms": 5_000,
    });
    this.streams = new SubscriberStreams(
      deps.admin,
      deps.deliveries,
      deps.subscriber,
      deps.log,
      deps.observe,
    );
    this.server.addService(
      checkedRequests(PublisherServiceService),
      publisherHandlers(deps.publisher, deps.log, deps.observe),
    );
    this.server.addService(checkedRequests(SubscriberServiceService), this.streams.handlers());
    this.server.addService(
      checkedRequests(AdminServiceService),
      adminHandlers(deps.admin, deps.log, deps.observe),
    );
    this.health = new HealthImplementation(
      Object.fromEntries(["", ...SERVICES].map((s) => [s, "NOT_SERVING"])),
    );
    this.health.addToServer(this.server);
    addReflection(this.server);
  }

  /** Binds and starts serving; resolves to the bound address (port 0 picks a free port). */
  async listen(address: string): Promise<string> {
    const port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(address, ServerCredentials.createInsecure(), (error, bound) =>
        error ? reject(error) : resolve(bound),
      ),
    );
    for (const service of ["", ...SERVICES]) this.health.setStatus(service, "SERVING");
    const host = address.slice(0, address.lastIndexOf(":"));
    return `${host}:${port}`;
  }

  /** First step of a graceful stop: report NOT_SERVING and refuse new subscriber streams. */
  stopAccepting(): void {
    for (const service of ["", ...SERVICES]) this.health.setStatus(service, "NOT_SERVING");
    this.streams.stopAccepting();
  }

  /** Ends the subscriber streams (releasing their deliveries), then lets unary calls finish. */
  async shutdown(graceMs: number): Promise<void> {
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
