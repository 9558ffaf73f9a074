// The broker's configuration: environment variables, overridden by command-line flags, checked
// once and frozen. Every setting has a default that works on a laptop with nothing installed.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import type { Level } from "./log.ts";

export interface BrokerConfig {
  /** Postgres to use; when absent the broker runs an embedded Postgres. */
  databaseUrl: string | undefined;
  /** host:port for gRPC; port 0 picks a free port. */
  grpcAddress: string;
  /** host:port for /metrics and health checks over HTTP. */
  metricsAddress: string;
  /** host:port of the web console (Connect and its static files); undefined when `off`. */
  consoleAddress: string | undefined;
  /** Who may scrape /metrics; undefined: anyone who can reach it. */
  metricsAuth: MetricsAuth | undefined;
  /** The operator accepts /metrics on a non-loopback address without authentication. */
  metricsInsecure: boolean;
  /** Where the embedded Postgres keeps its data. */
  dataDir: string;
  embeddedPostgresPort: number;
  heartbeatIntervalMs: number;
  /**
   * No message the broker sends is larger than this: deliveries, ack results and dead-letter pages
   * are split under it. The default fits a gRPC client's default 4 MiB receive limit.
   */
  maxMessageBytes: number;
  /** How long a new Subscribe stream may take to send `open`. */
  openTimeoutMs: number;
  /** Fallback poll for retries and lapsed leases, which nothing announces. */
  pollIntervalMs: number;
  /** How often lapsed leases are found and put back (pg-boss supervision). */
  superviseIntervalSeconds: number;
  /** How long a published (topic, source, id) is remembered: a repeat inside it is a duplicate. */
  dedupWindowSeconds: number;
  /** How often table upkeep runs: statistics, vacuum, idempotency keys, topic retention. */
  upkeepIntervalMs: number;
  /** Audit log rows older than this many days are deleted by the table upkeep. */
  auditRetentionDays: number;
  /** How often acked deliveries past their subscription's acked retention are deleted. */
  maintenanceIntervalSeconds: number;
  /** How often the database-backed gauges (backlog, in flight, ...) are refreshed for /metrics. */
  metricsRefreshMs: number;
  /** How long connecting to Postgres may take before a call fails with UNAVAILABLE. */
  dbConnectTimeoutMs: number;
  /** How long one statement may run before it is cancelled (and the call fails with UNAVAILABLE). */
  dbStatementTimeoutMs: number;
  /** A connection with no open call for this long is closed (one that never sends a request too). */
  grpcIdleTimeoutMs: number;
  /** How many calls (streams) one connection may have open at once. */
  grpcMaxStreamsPerConnection: number;
  /** On SIGTERM, how long consumers get to settle what they hold. */
  drainTimeoutMs: number;
  logLevel: Level;
  /** TLS on the gRPC port; absent: plaintext. */
  tls: TlsFiles | undefined;
  /** Whether callers must authenticate (a token, or a client certificate under mutual TLS). */
  auth: boolean;
  /** The operator accepts a non-loopback address without authentication. */
  insecure: boolean;
  /** The first admin token: its value (at least 32 characters), or a file it is read from or written to. */
  adminToken: string | undefined;
  adminTokenFile: string | undefined;
  /**
   * Mutual TLS: which client certificate common name acts as which principal. A certificate whose
   * name is not here authenticates nobody, even if a principal has that name.
   */
  certificatePrincipals: ReadonlyMap<string, string>;
  /** Failed authentications allowed per peer address and per token id in each window. */
  authFailureLimit: { failures: number; windowSeconds: number };
}

export interface MetricsAuth {
  /** A bearer token (Prometheus's `authorization` scrape setting). */
  token: string | undefined;
  /** A bearer token read at start from this file, or written to it (0600) when it does not exist. */
  tokenFile: string | undefined;
  /** Basic authentication (Prometheus's `basic_auth`). */
  basic: { user: string; password: string } | undefined;
}

export interface TlsFiles {
  certFile: string;
  keyFile: string;
  /** Mutual TLS: clients must present a certificate signed by this CA. */
  clientCaFile: string | undefined;
  /** How often the files are checked for changes (they are also re-read on SIGHUP). */
  reloadIntervalMs: number;
}

const MiB = 1024 * 1024;
/** A gRPC client's default receive limit (4 MiB), less headroom for framing. */
export const DEFAULT_MAX_MESSAGE_BYTES = 4 * MiB - 64 * 1024;

const FLAGS = {
  "database-url": { type: "string" },
  "grpc-address": { type: "string" },
  "metrics-address": { type: "string" },
  "console-address": { type: "string" },
  "data-dir": { type: "string" },
  "embedded-postgres-port": { type: "string" },
  "log-level": { type: "string" },
  "tls-cert": { type: "string" },
  "tls-key": { type: "string" },
  "tls-client-ca": { type: "string" },
  auth: { type: "string" },
  insecure: { type: "boolean" },
  "audit-retention-days": { type: "string" },
  "metrics-insecure": { type: "boolean" },
} as const;

export function loadConfig(
  argv: string[] = [],
  env: NodeJS.ProcessEnv = process.env,
): Readonly<BrokerConfig> {
  const { values } = parseArgs({ args: argv, options: FLAGS, strict: true, allowPositionals: false });
  const config: BrokerConfig = {
    databaseUrl: postgresUrl(values["database-url"] ?? (env.DATABASE_URL || undefined)),
    grpcAddress: values["grpc-address"] ?? env.PGMESH_GRPC_ADDRESS ?? "127.0.0.1:50051",
    metricsAddress: values["metrics-address"] ?? env.PGMESH_METRICS_ADDRESS ?? "127.0.0.1:9464",
    consoleAddress: offOr(values["console-address"] ?? env.PGMESH_CONSOLE_ADDRESS ?? "127.0.0.1:9465"),
    metricsAuth: metricsAuth(env),
    metricsInsecure:
      values["metrics-insecure"] ?? onOff("PGMESH_METRICS_INSECURE", env.PGMESH_METRICS_INSECURE ?? "off"),
    dataDir: resolve(values["data-dir"] ?? env.PGMESH_DATA_DIR ?? ".pgmesh"),
    embeddedPostgresPort: integer(
      "embedded Postgres port",
      values["embedded-postgres-port"] ?? env.PGMESH_EMBEDDED_POSTGRES_PORT ?? "54329",
      1,
      65535,
    ),
    heartbeatIntervalMs: integer("PGMESH_HEARTBEAT_MS", env.PGMESH_HEARTBEAT_MS ?? "15000", 100, 600_000),
    maxMessageBytes: integer(
      "PGMESH_MAX_MESSAGE_BYTES",
      env.PGMESH_MAX_MESSAGE_BYTES ?? String(DEFAULT_MAX_MESSAGE_BYTES),
      // Any event (at most 1 MiB) must fit in one message with room to spare.
      2 * MiB,
      1024 * MiB,
    ),
    openTimeoutMs: integer("PGMESH_OPEN_TIMEOUT_MS", env.PGMESH_OPEN_TIMEOUT_MS ?? "30000", 100, 600_000),
    pollIntervalMs: integer("PGMESH_POLL_MS", env.PGMESH_POLL_MS ?? "1000", 50, 60_000),
    superviseIntervalSeconds: integer(
      "PGMESH_SUPERVISE_SECONDS",
      env.PGMESH_SUPERVISE_SECONDS ?? "5",
      1,
      3600,
    ),
    dedupWindowSeconds: integer(
      "PGMESH_DEDUP_WINDOW_SECONDS",
      env.PGMESH_DEDUP_WINDOW_SECONDS ?? String(24 * 60 * 60),
      1,
      366 * 24 * 60 * 60,
    ),
    upkeepIntervalMs: integer("PGMESH_UPKEEP_MS", env.PGMESH_UPKEEP_MS ?? "5000", 100, 3_600_000),
    auditRetentionDays: integer(
      "PGMESH_AUDIT_RETENTION_DAYS",
      values["audit-retention-days"] ?? env.PGMESH_AUDIT_RETENTION_DAYS ?? "90",
      1,
      36_600,
    ),
    maintenanceIntervalSeconds: integer(
      "PGMESH_MAINTENANCE_SECONDS",
      env.PGMESH_MAINTENANCE_SECONDS ?? "60",
      1,
      86_400,
    ),
    metricsRefreshMs: integer(
      "PGMESH_METRICS_REFRESH_MS",
      env.PGMESH_METRICS_REFRESH_MS ?? "5000",
      100,
      600_000,
    ),
    dbConnectTimeoutMs: integer(
      "PGMESH_DB_CONNECT_TIMEOUT_MS",
      env.PGMESH_DB_CONNECT_TIMEOUT_MS ?? "5000",
      100,
      600_000,
    ),
    dbStatementTimeoutMs: integer(
      "PGMESH_DB_STATEMENT_TIMEOUT_MS",
      env.PGMESH_DB_STATEMENT_TIMEOUT_MS ?? "30000",
      100,
      3_600_000,
    ),
    grpcIdleTimeoutMs: integer(
      "PGMESH_GRPC_IDLE_TIMEOUT_MS",
      env.PGMESH_GRPC_IDLE_TIMEOUT_MS ?? "60000",
      100,
      86_400_000,
    ),
    grpcMaxStreamsPerConnection: integer(
      "PGMESH_GRPC_MAX_STREAMS_PER_CONNECTION",
      env.PGMESH_GRPC_MAX_STREAMS_PER_CONNECTION ?? "1000",
      1,
      100_000,
    ),
    drainTimeoutMs: integer("PGMESH_DRAIN_MS", env.PGMESH_DRAIN_MS ?? "10000", 0, 600_000),
    logLevel: level(values["log-level"] ?? env.PGMESH_LOG_LEVEL ?? "info"),
    tls: tlsFiles(
      values["tls-cert"] ?? env.PGMESH_TLS_CERT,
      values["tls-key"] ?? env.PGMESH_TLS_KEY,
      values["tls-client-ca"] ?? env.PGMESH_TLS_CLIENT_CA,
      env.PGMESH_TLS_RELOAD_MS,
    ),
    auth: false,
    insecure: values.insecure ?? onOff("PGMESH_INSECURE", env.PGMESH_INSECURE ?? "off"),
    adminToken: env.PGMESH_ADMIN_TOKEN || undefined,
    adminTokenFile: env.PGMESH_ADMIN_TOKEN_FILE ? resolve(env.PGMESH_ADMIN_TOKEN_FILE) : undefined,
    certificatePrincipals: certificatePrincipals(env.PGMESH_CERT_PRINCIPALS ?? ""),
    authFailureLimit: {
      failures: integer("PGMESH_AUTH_FAILURES", env.PGMESH_AUTH_FAILURES ?? "20", 1, 1_000_000),
      windowSeconds: integer(
        "PGMESH_AUTH_FAILURE_WINDOW_SECONDS",
        env.PGMESH_AUTH_FAILURE_WINDOW_SECONDS ?? "60",
        1,
        86_400,
      ),
    },
  };
  address("gRPC address", config.grpcAddress);
  address("metrics address", config.metricsAddress);
  if (config.consoleAddress) address("console address", config.consoleAddress);
  // Secure by default: off the loopback interface, callers must authenticate unless the operator
  // says otherwise in so many words. The console serves the same API, so it follows the same rule.
  const exposed = [
    ["gRPC address", config.grpcAddress],
    ["console address", config.consoleAddress],
  ].filter((listener): listener is [string, string] => !!listener[1] && !isLoopback(listener[1]));
  const auth = values.auth ?? env.PGMESH_AUTH;
  config.auth = auth === undefined ? exposed.length > 0 : onOff("PGMESH_AUTH", auth);
  const [what, where] = exposed[0] ?? [];
  if (!config.auth && where && !config.insecure) {
    throw new Error(
      `the ${what} ${where} is not loopback, so authentication must be on ` +
        "(PGMESH_AUTH=on); to serve it without authentication anyway, set PGMESH_INSECURE=on (--insecure)",
    );
  }
  // The same rule for /metrics, with its own flag: PGMESH_INSECURE is about the gRPC port.
  if (!config.metricsAuth && !isLoopback(config.metricsAddress) && !config.metricsInsecure) {
    throw new Error(
      `the metrics address ${config.metricsAddress} is not loopback, so /metrics needs authentication ` +
        "(PGMESH_METRICS_TOKEN or PGMESH_METRICS_TOKEN_FILE, or PGMESH_METRICS_USER with PGMESH_METRICS_PASSWORD " +
        "or PGMESH_METRICS_PASSWORD_FILE); to serve it without authentication anyway, set PGMESH_METRICS_INSECURE=on " +
        "(--metrics-insecure)",
    );
  }
  if (config.adminToken !== undefined && config.adminToken.length < 32) {
    throw new Error("PGMESH_ADMIN_TOKEN must be at least 32 characters (e.g. `openssl rand -hex 32`)");
  }
  return Object.freeze(config);
}

/** `off` (any case) disables a listener. */
function offOr(address: string): string | undefined {
  return address.toLowerCase() === "off" ? undefined : address;
}

/** Whether a host:port only accepts connections from this machine. */
export function isLoopback(hostPort: string): boolean {
  const host = hostPort.slice(0, hostPort.lastIndexOf(":")).replace(/^\[|\]$/g, "");
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function tlsFiles(
  certFile: string | undefined,
  keyFile: string | undefined,
  clientCaFile: string | undefined,
  reloadMs: string | undefined,
): TlsFiles | undefined {
  if (!certFile && !keyFile) {
    if (clientCaFile) throw new Error("PGMESH_TLS_CLIENT_CA needs PGMESH_TLS_CERT and PGMESH_TLS_KEY too");
    return undefined;
  }
  if (!certFile || !keyFile) {
    throw new Error("TLS needs both a certificate (PGMESH_TLS_CERT) and its key (PGMESH_TLS_KEY)");
  }
  return {
    certFile: resolve(certFile),
    keyFile: resolve(keyFile),
    clientCaFile: clientCaFile ? resolve(clientCaFile) : undefined,
    reloadIntervalMs: integer("PGMESH_TLS_RELOAD_MS", reloadMs ?? "5000", 100, 3_600_000),
  };
}

/** /metrics authentication from the environment; undefined when none is configured. */
function metricsAuth(env: NodeJS.ProcessEnv): MetricsAuth | undefined {
  const token = env.PGMESH_METRICS_TOKEN || undefined;
  const tokenFile = env.PGMESH_METRICS_TOKEN_FILE ? resolve(env.PGMESH_METRICS_TOKEN_FILE) : undefined;
  const user = env.PGMESH_METRICS_USER || undefined;
  const passwordFile = env.PGMESH_METRICS_PASSWORD_FILE || undefined;
  const password =
    env.PGMESH_METRICS_PASSWORD ||
    (passwordFile ? secretFile("PGMESH_METRICS_PASSWORD_FILE", passwordFile) : undefined);
  if (token !== undefined) atLeast16("PGMESH_METRICS_TOKEN", token);
  if (password !== undefined) atLeast16("PGMESH_METRICS_PASSWORD", password);
  if (user !== undefined && password === undefined) {
    throw new Error("PGMESH_METRICS_USER needs PGMESH_METRICS_PASSWORD or PGMESH_METRICS_PASSWORD_FILE");
  }
  if (password !== undefined && user === undefined) {
    throw new Error("PGMESH_METRICS_PASSWORD needs PGMESH_METRICS_USER");
  }
  if (token === undefined && tokenFile === undefined && user === undefined) return undefined;
  return {
    token,
    tokenFile,
    basic: user !== undefined && password !== undefined ? { user, password } : undefined,
  };
}

function atLeast16(name: string, value: string): void {
  if (value.length < 16)
    throw new Error(`${name} must be at least 16 characters (e.g. \`openssl rand -hex 32\`)`);
}

/** A secret kept in a file (trimmed); the error names the setting and the file, never the content. */
function secretFile(name: string, file: string): string {
  try {
    return readFileSync(resolve(file), "utf8").trim();
  } catch (error) {
    throw new Error(
      `${name}: cannot read ${resolve(file)} (${(error as NodeJS.ErrnoException).code ?? "error"})`,
    );
  }
}

/**
 * PGMESH_CERT_PRINCIPALS: `common-name=principal` pairs separated by commas, e.g.
 * `orders.internal=orders-service,ops.internal=ops`. The last `=` splits a pair (principal names
 * hold none).
 */
export function certificatePrincipals(raw: string): ReadonlyMap<string, string> {
  const map = new Map<string, string>();
  for (const pair of raw.split(",").map((p) => p.trim())) {
    if (!pair) continue;
    const at = pair.lastIndexOf("=");
    const commonName = pair.slice(0, at).trim();
    const principal = pair.slice(at + 1).trim();
    if (at < 0 || !commonName || !principal) {
      throw new Error(
        `PGMESH_CERT_PRINCIPALS must be common-name=principal pairs separated by commas, got ${JSON.stringify(pair)}`,
      );
    }
    map.set(commonName, principal);
  }
  return map;
}

/** A Postgres URL as postgres.js takes it; anything else is refused here rather than as a driver stack trace. */
function postgresUrl(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  // The value is not echoed: it may hold a password.
  const expected = "expected postgres://user:password@host:5432/database";
  if (!URL.canParse(raw)) throw new Error(`DATABASE_URL (--database-url) is not a URL; ${expected}`);
  const { protocol } = new URL(raw);
  if (protocol !== "postgres:" && protocol !== "postgresql:") {
    throw new Error(
      `DATABASE_URL (--database-url) is not a Postgres URL (it starts ${protocol}); ${expected}`,
    );
  }
  return raw;
}

function onOff(name: string, raw: string): boolean {
  if (["on", "true", "1"].includes(raw)) return true;
  if (["off", "false", "0"].includes(raw)) return false;
  throw new Error(`${name} must be on or off, got ${JSON.stringify(raw)}`);
}

function integer(name: string, raw: string, min: number, max: number): number {
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`${name} must be a whole number from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

function address(name: string, value: string): void {
  if (!/^.+:\d{1,5}$/.test(value))
    throw new Error(`${name} must look like host:port, got ${JSON.stringify(value)}`);
}

function level(raw: string): Level {
  if (["debug", "info", "warn", "error", "silent"].includes(raw)) return raw as Level;
  throw new Error(`log level must be one of debug, info, warn, error, silent; got ${JSON.stringify(raw)}`);
}
