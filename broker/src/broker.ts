// Composition: config -> store -> delivery -> server. Used by main.ts, the CLI and the tests, so
// every one of them runs the same broker.
import { randomUUID } from "node:crypto";
import {
  accessSync,
  chmodSync,
  constants,
  existsSync,
  mkdirSync,
  readFileSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { Event } from "@pgmesh/proto/pgmesh/v1/event";
import { type BrokerConfig, isLoopback, type MetricsAuth } from "./config.ts";
import { Admin } from "./delivery/admin.ts";
import { DeliveryService } from "./delivery/delivery-service.ts";
import { OutboxRelay } from "./delivery/outbox-relay.ts";
import { Publisher } from "./delivery/publishing.ts";
import { SubscriptionFilters } from "./delivery/subscription-filters.ts";
import { waitAtMost } from "./delivery/wait-at-most.ts";
import type { Logger } from "./log.ts";
import { GaugeRefresher } from "./metrics/gauges.ts";
import { MetricsServer } from "./metrics/http-server.ts";
import { BrokerMetrics } from "./metrics/registry.ts";
import { type ScrapeCredentials, scrapeAuth } from "./metrics/scrape-auth.ts";
import { AccessAdmin } from "./security/access-admin.ts";
import { Authenticator } from "./security/authenticator.ts";
import { FailedAuthentications } from "./security/failed-authentications.ts";
import { OpenCalls } from "./security/open-calls.ts";
import { generateToken } from "./security/tokens.ts";
import { ConsoleServer } from "./server/console/console-server.ts";
import { envelopeFromWire } from "./server/convert.ts";
import { GrpcServer } from "./server/grpc-server.ts";
import { ReloadingServerCredentials } from "./server/tls-credentials.ts";
import { PostgresAccessStore } from "./store/access-store.ts";
import { PostgresCatalogStore } from "./store/catalog-store.ts";
import { connectDatabase, type Sql } from "./store/database.ts";
import { DatabaseGate, failingFastAsUnavailable } from "./store/database-errors.ts";
import { PostgresDeadLetterStore } from "./store/dead-letter-store.ts";
import { type EmbeddedPostgres, startEmbeddedPostgres } from "./store/embedded-postgres.ts";
import { PostgresEventStore } from "./store/event-store.ts";
import { migrate } from "./store/migrate.ts";
import { PostgresOutboxStore } from "./store/outbox-store.ts";
import { selectConnections, selectSubscriptionGauges, selectTopicNames } from "./store/queries/stats.ts";
import { JobQueue } from "./store/queue.ts";
import { TableUpkeep } from "./store/upkeep.ts";
import { PostgresWakeupBus } from "./store/wakeups.ts";

export interface RunningBroker {
  /** host:port the gRPC server is bound to. */
  grpcAddress: string;
  /** host:port of /metrics and /healthz. */
  metricsAddress: string;
  /** host:port of the web console; undefined when it is off. */
  consoleAddress: string | undefined;
  databaseUrl: string;
  /** Graceful: stop taking streams, let consumers settle, release the rest, close everything. */
  stop(): Promise<void>;
  /** For a forced exit: leaves nothing running behind the process (the embedded Postgres). */
  abandon(): void;
  /** Re-reads the TLS certificate files (SIGHUP). */
  reloadCertificates(): void;
}

/** Waits for `closing` at most `ms`, then goes on with a warning. */
async function closeWithin(ms: number, closing: Promise<unknown>, what: string, log: Logger): Promise<void> {
  if (!(await waitAtMost(closing, ms)))
    log.warn(`${what} did not close within ${ms / 1000} s; stopping anyway`);
}

/** Whether `SELECT 1` succeeds within `withinMs`. */
async function databaseAnswers(sql: Sql, withinMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), withinMs);
  });
  const answered = sql`SELECT 1 AS ok`.then(
    () => true,
    () => false,
  );
  try {
    return await Promise.race([answered, late]);
  } finally {
    clearTimeout(timer);
  }
}

export async function startBroker(config: Readonly<BrokerConfig>, log: Logger): Promise<RunningBroker> {
  let embedded: EmbeddedPostgres | undefined;
  let databaseUrl = config.databaseUrl;
  if (!databaseUrl) {
    // Where it cannot run (the Docker image, a read-only folder), the way out is DATABASE_URL.
    embedded = await startEmbeddedPostgres({
      dataDir: config.dataDir,
      port: config.embeddedPostgresPort,
      log,
    }).catch((error: unknown) => {
      throw new Error(
        `no DATABASE_URL is set and the embedded Postgres could not start (${(error as Error).message}): set DATABASE_URL to your Postgres`,
        { cause: error },
      );
    });
    databaseUrl = embedded.url;
  }
  const timeouts = {
    connectTimeoutMs: config.dbConnectTimeoutMs,
    statementTimeoutMs: config.dbStatementTimeoutMs,
  };
  const sql = connectDatabase(databaseUrl, { timeouts });
  const applied = await migrate(sql);
  if (applied.length > 0) log.info(`applied migrations: ${applied.join(", ")}`);
  const queue = await JobQueue.start(sql, {
    connectionString: databaseUrl,
    // pg-boss's own expiry pass is only a backstop behind the lease sweeper below.
    monitorIntervalSeconds: Math.max(60, config.superviseIntervalSeconds),
    timeouts,
    maintenanceIntervalSeconds: config.maintenanceIntervalSeconds,
    onError: (error: unknown) => log.error("pg-boss", error),
  });

  const brokerId = randomUUID();
  const metrics = new BrokerMetrics();
  // While the database is unreachable, calls fail fast with UNAVAILABLE rather than INTERNAL.
  const gate = new DatabaseGate(() => sql`SELECT 1`);
  const rawEvents = new PostgresEventStore(sql, brokerId);
  const events = failingFastAsUnavailable(rawEvents, gate);
  const catalog = failingFastAsUnavailable(new PostgresCatalogStore(sql, queue), gate);
  const filters = new SubscriptionFilters();
  const deliveries = new DeliveryService(failingFastAsUnavailable(queue, gate), events, {
    accepts: (subscription, event) => filters.accepts(subscription, event),
    pollIntervalMs: config.pollIntervalMs,
    sweepIntervalMs: config.superviseIntervalSeconds * 1000,
    observer: metrics,
    loadSubscription: (name) => catalog.getSubscription(name),
    onError: (error, context) => log.error(context, error),
  });
  const publisher = new Publisher(
    events,
    (topic, newest) => deliveries.wakeTopics([topic], "events", newest),
    metrics,
    (topic) => catalog.getTopicSchema(topic),
    deliveries.handoffs,
  );
  let server: GrpcServer | undefined;
  const deadLetters = failingFastAsUnavailable(new PostgresDeadLetterStore(sql, queue), gate);
  const admin = new Admin(
    catalog,
    deadLetters,
    (subscription) => deliveries.refresh(subscription),
    (subscription) => deliveries.wake([subscription.name]),
    (topic) => publisher.forgetSchema(topic),
  );
  const bus = new PostgresWakeupBus(sql, brokerId);
  await bus.listen((topics, kind) => deliveries.wakeTopics(topics, kind === "jobs" ? "work" : "events"));
  await bus.listenForTopicSchemaChanges((topic) => publisher.forgetSchema(topic));
  // Every broker, the changing one included, ends its streams on a deleted subscription and takes
  // an updated policy into use.
  await bus.listenForSubscriptionChanges((change) => {
    if (change.kind === "deleted") {
      server?.subscriptionDeleted(change);
      return;
    }
    catalog.getSubscription(change.name).then(
      (sub) => sub && deliveries.refresh(sub),
      (error: unknown) => log.error(`reloading subscription ${change.name}`, error),
    );
  });
  deliveries.start();

  const accessStore = failingFastAsUnavailable(new PostgresAccessStore(sql), gate);
  const authenticator = config.auth
    ? new Authenticator(
        accessStore,
        config.certificatePrincipals,
        new FailedAuthentications(config.authFailureLimit),
      )
    : undefined;
  const openCalls = authenticator && new OpenCalls(authenticator);
  const access = new AccessAdmin(accessStore, () => authenticator?.changed());
  if (authenticator) {
    await authenticator.start();
    await bootstrapAdmin(access, config, log);
  }
  const credentials = config.tls
    ? new ReloadingServerCredentials(config.tls, {
        loaded: (files) => log.info(`TLS certificates reloaded from ${files.join(", ")}`),
        failed: (error) =>
          log.error("reloading the TLS certificates failed; still using the previous ones", error),
      })
    : undefined;
  warnIfExposed(config, log);

  const gauges = new GaugeRefresher(
    metrics,
    {
      subscriptionGauges: () => selectSubscriptionGauges(sql),
      connections: () => selectConnections(sql),
      topics: () => selectTopicNames(sql),
    },
    (error) => log.error("refreshing the metrics gauges", error),
  );
  server = new GrpcServer({
    access,
    security: { authenticator, openCalls, audit: (entry) => accessStore.audit(entry) },
    credentials,
    admin,
    console: {
      overview: () => gauges.snapshot,
      traffic: () => metrics.traffic(),
      consumers: (subscription) => deliveries.consumersOf(subscription),
    },
    publisher,
    deliveries,
    subscriber: {
      heartbeatIntervalMs: config.heartbeatIntervalMs,
      openTimeoutMs: config.openTimeoutMs,
      maxMessageBytes: config.maxMessageBytes,
    },
    connections: {
      idleTimeoutMs: config.grpcIdleTimeoutMs,
      maxStreamsPerConnection: config.grpcMaxStreamsPerConnection,
    },
    log: (message, error) => log.error(message, error),
    observe: (method, code) => metrics.request(method, code),
  });
  // Statistics, the idempotency window, topic and audit retention: bounded tables whatever
  // autovacuum does.
  const upkeep = new TableUpkeep(sql, {
    dedupWindowSeconds: config.dedupWindowSeconds,
    auditRetentionDays: config.auditRetentionDays,
    onError: (error) => log.error("table upkeep", error),
    onPass: (r, ms) =>
      log.debug(
        `upkeep: ${ms.toFixed(0)} ms; analyzed ${r.analyzed.join(", ") || "-"}; vacuumed ${r.vacuumed.join(", ") || "-"}; forgot ${r.keysForgotten} keys; deleted ${r.eventsDeleted} events, ${r.auditRowsDeleted} audit rows`,
      ),
  });
  // Often enough that a key outlives its window by at most half of it.
  upkeep.start(Math.min(config.upkeepIntervalMs, config.dedupWindowSeconds * 500));

  // Events applications published inside their own transactions (pgmesh.outbox_publish).
  const relay = new OutboxRelay(
    new PostgresOutboxStore(sql, rawEvents),
    (bytes) => envelopeFromWire(Event.decode(bytes)),
    (topic, event) => publisher.checkSchema(topic, [event]),
    (topics) => deliveries.wakeTopics(topics),
    (error) => log.error("relaying the outbox", error),
    (count) => log.warn(`outbox: ${count} event(s) could not be published; see pgmesh.outbox_failures`),
  );
  await relay.start(config.pollIntervalMs);

  gauges.start(config.metricsRefreshMs);

  let serving = true;
  const metricsServer = new MetricsServer(
    metrics.registry,
    {
      live: () => serving,
      // Ready: serving, and the database answers within a second (a probe must not hang on an outage).
      ready: async () =>
        serving && gate.isOpen && (await databaseAnswers(sql, Math.min(1_000, config.dbConnectTimeoutMs))),
    },
    config.metricsAuth && scrapeAuth(scrapeCredentials(config.metricsAuth, log)),
  );
  const metricsAddress = await metricsServer.listen(config.metricsAddress);
  const grpcAddress = await server.listen(config.grpcAddress);
  // The web console: the same handlers and access checks as gRPC, over Connect for a browser.
  const consoleServer =
    config.consoleAddress === undefined
      ? undefined
      : new ConsoleServer({
          handlers: server.handlers,
          authenticator,
          audit: (entry) => accessStore.audit(entry),
          authRequired: config.auth,
          tls: credentials,
          log: (message, error) => log.error(message, error),
          observe: (method, code) => metrics.request(method, code),
        });
  const consoleAddress = await consoleServer?.listen(config.consoleAddress as string);
  if (consoleAddress) {
    log.info(`web console on ${config.tls ? "https" : "http"}://${consoleAddress}/`);
  }
  log.info(`metrics on http://${metricsAddress}/metrics`);
  log.info(
    `pgmesh broker ${brokerId} serving gRPC on ${grpcAddress} (${config.tls ? (config.tls.clientCaFile ? "mutual TLS" : "TLS") : "plaintext"}, authentication ${config.auth ? "on" : "off"})`,
  );

  let stopping: Promise<void> | undefined;
  const grpc = server;
  return {
    grpcAddress,
    metricsAddress,
    consoleAddress,
    databaseUrl,
    stop: () => {
      stopping ??= (async () => {
        serving = false;
        grpc.stopAccepting();
        // Every step is bounded: work stuck on a database that went away must not keep a stopping
        // broker alive (what it held goes back when its leases lapse).
        await closeWithin(7_000, relay.stop(), "the outbox relay", log);
        await closeWithin(
          config.drainTimeoutMs + 7_000,
          deliveries.drain(config.drainTimeoutMs),
          "the drain",
          log,
        );
        await grpc.shutdown(5_000);
        openCalls?.stop();
        credentials?.close();
        await closeWithin(7_000, gauges.stop(), "the metrics gauges", log);
        await upkeep.stop();
        await closeWithin(7_000, metricsServer.close(), "the metrics server", log);
        if (consoleServer) await closeWithin(7_000, consoleServer.close(), "the web console", log);
        await closeWithin(7_000, queue.stop(), "pg-boss", log);
        // Both pools can wait for ever on a connection that died in a server crash (postgres.js's
        // end() past its own timeout, node-postgres's end() for a checked-out client): the broker
        // stops regardless.
        await closeWithin(7_000, sql.end({ timeout: 5 }), "the database pool", log);
        await embedded?.stop();
        log.info("pgmesh broker stopped");
      })();
      return stopping;
    },
    abandon: () => embedded?.abandon(),
    reloadCertificates: () => credentials?.reload(),
  };
}

/**
 * Makes sure an administrator can get in: the token from PGMESH_ADMIN_TOKEN, or the one in
 * PGMESH_ADMIN_TOKEN_FILE (written there, readable by the broker's user only, when the file does
 * not exist yet), or else, on a database without an admin, a new one: off loopback written to
 * `admin-token` in the data directory (0600) with its path printed, since a supervisor keeps
 * stdout with the logs; on loopback (a laptop) shown once on stdout. The token itself never goes
 * to the log.
 */
async function bootstrapAdmin(access: AccessAdmin, config: Readonly<BrokerConfig>, log: Logger) {
  let token = config.adminToken;
  if (token === undefined && config.adminTokenFile) {
    if (!existsSync(config.adminTokenFile)) {
      writeFileSync(config.adminTokenFile, `${generateToken()}\n`, { mode: 0o600, flag: "wx" });
      log.info(`wrote a new admin token to ${config.adminTokenFile}`);
    }
    token = readFileSync(config.adminTokenFile, "utf8").trim();
  }
  // Checked before a token is created: one nobody can read would lock the administrator out.
  const firstTokenFile =
    token === undefined && !isLoopback(config.grpcAddress) ? writableTokenFile(config.dataDir) : undefined;
  const created = await access.bootstrap(token);
  if (!created && token === undefined) {
    log.info("authentication is on; PGMESH_ADMIN_TOKEN adds an admin token if none is at hand");
  }
  if (!created) return;
  if (firstTokenFile) {
    writeFileSync(firstTokenFile, `${created}\n`, { mode: 0o600 });
    chmodSync(firstTokenFile, 0o600); // an existing file keeps its mode through writeFileSync
    log.warn(`no admin token was configured: created one for principal admin in ${firstTokenFile}`);
    process.stdout.write(`pgmesh admin token written to ${firstTokenFile} (readable by this user only)\n`);
    return;
  }
  log.warn("no admin token was configured: created one for principal admin, shown once on standard output");
  process.stdout.write(`pgmesh admin token (shown once, keep it): ${created}\n`);
}

/** `admin-token` in the data directory, which is made (0700) if missing; throws if it cannot be written. */
function writableTokenFile(dataDir: string): string {
  const file = join(dataDir, "admin-token");
  try {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    accessSync(dataDir, constants.W_OK);
  } catch (error) {
    throw new Error(
      `the first admin token cannot be written to ${file} (${(error as Error).message}); set PGMESH_ADMIN_TOKEN_FILE to a writable path, or PGMESH_ADMIN_TOKEN`,
      { cause: error },
    );
  }
  return file;
}

/**
 * The credentials /metrics takes. A token file that does not exist yet gets a new token (0600,
 * like the admin token file), so an image bound to 0.0.0.0 starts with its metrics protected; the
 * scraper reads the token from that file.
 */
function scrapeCredentials(auth: MetricsAuth, log: Logger): ScrapeCredentials {
  let token = auth.token;
  if (token === undefined && auth.tokenFile) {
    if (!existsSync(auth.tokenFile)) {
      writeFileSync(auth.tokenFile, `${generateToken()}\n`, { mode: 0o600, flag: "wx" });
      log.info(`wrote a new metrics token to ${auth.tokenFile}`);
    }
    token = readFileSync(auth.tokenFile, "utf8").trim();
    if (token.length < 16)
      throw new Error(`the metrics token in ${auth.tokenFile} must be at least 16 characters`);
  }
  return { token, basic: auth.basic };
}

function warnIfExposed(config: Readonly<BrokerConfig>, log: Logger): void {
  if (!config.metricsAuth && !isLoopback(config.metricsAddress)) {
    log.warn(
      `*** INSECURE: serving /metrics on ${config.metricsAddress} WITHOUT AUTHENTICATION (PGMESH_METRICS_INSECURE): anyone who can reach it can read topic and subscription names and traffic; set PGMESH_METRICS_TOKEN ***`,
    );
  }
  // The console serves the same API (to a browser), so it is exposed the same way.
  for (const address of [config.grpcAddress, config.consoleAddress]) {
    if (address === undefined || isLoopback(address)) continue;
    if (!config.auth) {
      log.warn(
        `*** INSECURE: serving ${address} WITHOUT AUTHENTICATION (PGMESH_INSECURE): anyone who can reach it can read, publish and delete everything ***`,
      );
    }
    if (!config.tls) {
      log.warn(
        `*** INSECURE: serving ${address} WITHOUT TLS: tokens and events cross the network in plaintext; set PGMESH_TLS_CERT and PGMESH_TLS_KEY ***`,
      );
    }
  }
}
