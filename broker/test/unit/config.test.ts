import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.ts";

describe("loadConfig", () => {
  it("defaults to an embedded Postgres and the documented addresses", () => {
    const config = loadConfig([], {});
    expect(config).toMatchObject({
      databaseUrl: undefined,
      grpcAddress: "127.0.0.1:50051",
      metricsAddress: "127.0.0.1:9464",
      embeddedPostgresPort: 54329,
      // The contract promises a heartbeat every 15 s on an idle stream.
      heartbeatIntervalMs: 15_000,
      // What a default gRPC client accepts (4 MiB), less headroom.
      maxMessageBytes: 4 * 1024 * 1024 - 64 * 1024,
    });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it("lets flags override the environment", () => {
    const config = loadConfig(["--grpc-address", "0.0.0.0:6000"], {
      PGMESH_GRPC_ADDRESS: "127.0.0.1:7000",
      DATABASE_URL: "postgres://x/y",
    });
    expect(config.grpcAddress).toBe("0.0.0.0:6000");
    expect(config.databaseUrl).toBe("postgres://x/y");
  });

  it("refuses nonsense with a message that names the setting", () => {
    expect(() => loadConfig([], { PGMESH_POLL_MS: "soon" })).toThrow(
      /PGMESH_POLL_MS must be a whole number from 50 to 60000, got "soon"/,
    );
    expect(() => loadConfig(["--grpc-address", "nowhere"], {})).toThrow(
      /gRPC address must look like host:port/,
    );
    expect(() => loadConfig(["--log-level", "loud"], {})).toThrow(/log level must be one of/);
    expect(() => loadConfig(["--unknown"], {})).toThrow();
  });
});

describe("secure by default", () => {
  it("serves loopback without authentication unless asked, and anything else with it", () => {
    expect(loadConfig([], {}).auth).toBe(false);
    expect(loadConfig([], { PGMESH_AUTH: "on" }).auth).toBe(true);
    expect(loadConfig(["--grpc-address", "0.0.0.0:50051"], {}).auth).toBe(true);
    expect(loadConfig(["--grpc-address", "[::1]:50051"], {}).auth).toBe(false);
  });

  it("refuses a non-loopback address without authentication unless the insecure flag is given", () => {
    expect(() => loadConfig(["--grpc-address", "0.0.0.0:50051", "--auth", "off"], {})).toThrow(
      /the gRPC address 0.0.0.0:50051 is not loopback, so authentication must be on \(PGMESH_AUTH=on\); to serve it without authentication anyway, set PGMESH_INSECURE=on/,
    );
    const insecure = loadConfig(["--grpc-address", "0.0.0.0:50051", "--auth", "off", "--insecure"], {});
    expect(insecure).toMatchObject({ auth: false, insecure: true });
    expect(
      loadConfig([], { PGMESH_GRPC_ADDRESS: "10.0.0.5:1", PGMESH_AUTH: "off", PGMESH_INSECURE: "on" }).auth,
    ).toBe(false);
  });

  it("refuses /metrics off loopback without authentication unless told it is insecure, like gRPC", () => {
    const open = ["--metrics-address", "0.0.0.0:9464"];
    expect(() => loadConfig(open, {})).toThrow(
      "the metrics address 0.0.0.0:9464 is not loopback, so /metrics needs authentication (PGMESH_METRICS_TOKEN or PGMESH_METRICS_TOKEN_FILE, or PGMESH_METRICS_USER with PGMESH_METRICS_PASSWORD or PGMESH_METRICS_PASSWORD_FILE); to serve it without authentication anyway, set PGMESH_METRICS_INSECURE=on (--metrics-insecure)",
    );
    expect(loadConfig([...open, "--metrics-insecure"], {}).metricsAuth).toBeUndefined();
    expect(loadConfig(open, { PGMESH_METRICS_INSECURE: "on" }).metricsInsecure).toBe(true);
    // PGMESH_INSECURE is about the gRPC port: it does not open /metrics too.
    expect(() => loadConfig(open, { PGMESH_INSECURE: "on" })).toThrow(/PGMESH_METRICS_INSECURE/);
    const token = "a-metrics-token-of-32-characters!";
    expect(loadConfig(open, { PGMESH_METRICS_TOKEN: token }).metricsAuth).toEqual({
      token,
      tokenFile: undefined,
      basic: undefined,
    });
    expect(
      loadConfig(open, { PGMESH_METRICS_USER: "prometheus", PGMESH_METRICS_PASSWORD: "sixteen-chars-ok" })
        .metricsAuth?.basic,
    ).toEqual({ user: "prometheus", password: "sixteen-chars-ok" });
    expect(() => loadConfig([], { PGMESH_METRICS_TOKEN: "short" })).toThrow(
      "PGMESH_METRICS_TOKEN must be at least 16 characters (e.g. `openssl rand -hex 32`)",
    );
    expect(() => loadConfig([], { PGMESH_METRICS_USER: "prometheus" })).toThrow(
      "PGMESH_METRICS_USER needs PGMESH_METRICS_PASSWORD or PGMESH_METRICS_PASSWORD_FILE",
    );
    expect(() => loadConfig([], { PGMESH_METRICS_PASSWORD: "sixteen-chars-ok" })).toThrow(
      "PGMESH_METRICS_PASSWORD needs PGMESH_METRICS_USER",
    );
  });

  it("keeps the audit log 90 days unless told otherwise, in whole days", () => {
    expect(loadConfig([], {}).auditRetentionDays).toBe(90);
    expect(loadConfig([], { PGMESH_AUDIT_RETENTION_DAYS: "400" }).auditRetentionDays).toBe(400);
    expect(
      loadConfig(["--audit-retention-days", "7"], { PGMESH_AUDIT_RETENTION_DAYS: "400" }).auditRetentionDays,
    ).toBe(7);
    expect(() => loadConfig([], { PGMESH_AUDIT_RETENTION_DAYS: "0" })).toThrow(
      /PGMESH_AUDIT_RETENTION_DAYS must be a whole number from 1/,
    );
  });

  it("checks the TLS and admin token settings", () => {
    expect(() => loadConfig([], { PGMESH_TLS_CERT: "a.crt" })).toThrow(/both a certificate .* and its key/);
    expect(() => loadConfig([], { PGMESH_TLS_CLIENT_CA: "ca.crt" })).toThrow(/needs PGMESH_TLS_CERT/);
    expect(() => loadConfig([], { PGMESH_ADMIN_TOKEN: "short" })).toThrow(/at least 32 characters/);
    expect(loadConfig(["--tls-cert", "a.crt", "--tls-key", "a.key"], {}).tls).toMatchObject({
      clientCaFile: undefined,
      reloadIntervalMs: 5000,
    });
  });
});

describe("PGMESH_CERT_PRINCIPALS", () => {
  it("maps common names to principals, splitting each pair at its last '='", () => {
    const config = loadConfig([], { PGMESH_CERT_PRINCIPALS: "orders.internal=orders-service, CN=x=ops ,," });
    expect([...config.certificatePrincipals]).toEqual([
      ["orders.internal", "orders-service"],
      ["CN=x", "ops"],
    ]);
    expect(loadConfig([], {}).certificatePrincipals.size).toBe(0);
  });

  it("refuses a pair without both halves, naming the setting", () => {
    for (const raw of ["orders-service", "=ops", "cn="]) {
      expect(() => loadConfig([], { PGMESH_CERT_PRINCIPALS: raw })).toThrow(
        /^PGMESH_CERT_PRINCIPALS must be/,
      );
    }
  });
});
