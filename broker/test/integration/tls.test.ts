// TLS and mutual TLS on the gRPC port, with certificates openssl makes for the test: the handshake,
// client certificates that are good, missing or from another CA, the certificate's common name as
// the caller's identity when PGMESH_CERT_PRINCIPALS maps it (and only then), and certificates
// replaced while the broker runs.
import { execFile } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { copyFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { status } from "@grpc/grpc-js";
import { PgmeshClient } from "@pgmesh/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestBroker, type TestBroker } from "../support/broker.ts";
import { type Pem, TestCertificates } from "../support/certificates.ts";
import { createTestDatabase, type TestDatabase } from "../support/database.ts";
import { rejection } from "../support/rejection.ts";
import { until } from "../support/until.ts";

const pgmesh = fileURLToPath(new URL("../../bin/pgmesh.js", import.meta.url));
const run = promisify(execFile);
const certs = new TestCertificates();
const ca = certs.ca("pgmesh-test-ca");
const otherCa = certs.ca("some-other-ca");
const server = certs.leaf(ca, "localhost", "server", "server");
const goodClient = certs.leaf(ca, "orders-service", "client");
const strangerClient = certs.leaf(ca, "nobody-we-know", "client");
// Named like the first admin principal: being named so makes it nobody.
const adminNamedClient = certs.leaf(ca, "admin", "client", "admin-named");
// Mapped to orders-service by PGMESH_CERT_PRINCIPALS.
const mappedClient = certs.leaf(ca, "orders.internal", "client", "mapped");
const forgedClient = certs.leaf(otherCa, "orders-service", "client", "forged");

let db: TestDatabase;
const brokers: TestBroker[] = [];
const clients: PgmeshClient[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  for (const c of clients) c.close();
  for (const b of brokers) await b.stop();
  await db?.drop();
  certs.remove();
});

async function broker(env: Record<string, string>, clientTls: { ca?: Buffer; cert?: Buffer; key?: Buffer }) {
  const started = await startTestBroker(db.url, env, { tls: clientTls, timeoutMs: 5_000 });
  brokers.push(started);
  return started;
}

function client(address: string, tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer }): PgmeshClient {
  const c = new PgmeshClient(address, { tls, timeoutMs: 3_000 });
  clients.push(c);
  return c;
}

const tlsEnv = (extra: Record<string, string> = {}) => ({
  PGMESH_TLS_CERT: server.certFile,
  PGMESH_TLS_KEY: server.keyFile,
  ...extra,
});

describe("TLS", () => {
  it("serves clients that trust its CA, and refuses plaintext and clients that do not", async () => {
    const mesh = await broker(tlsEnv(), { ca: ca.cert });
    expect((await mesh.client.createTopic("tls.topic")).name).toBe("tls.topic");

    expect((await rejection(client(mesh.address).listTopics())).code).toBe(status.UNAVAILABLE);
    expect((await rejection(client(mesh.address, { ca: otherCa.cert }).listTopics())).code).toBe(
      status.UNAVAILABLE,
    );
  });

  it("takes new certificates on reload without a restart, and on its own when the files change", async () => {
    const rotating = certs.leaf(ca, "localhost", "server", "rotating");
    const mesh = await broker(
      { PGMESH_TLS_CERT: rotating.certFile, PGMESH_TLS_KEY: rotating.keyFile, PGMESH_TLS_RELOAD_MS: "200" },
      { ca: ca.cert },
    );
    const nextCa = certs.ca("next-ca");
    const next = certs.leaf(nextCa, "localhost", "server", "next");

    // Reload (what SIGHUP does) after the files were replaced by a certificate from a new CA.
    copyFileSync(next.certFile, rotating.certFile);
    copyFileSync(next.keyFile, rotating.keyFile);
    mesh.broker.reloadCertificates();
    await client(mesh.address, { ca: nextCa.cert }).listTopics();
    expect((await rejection(client(mesh.address, { ca: ca.cert }).listTopics())).code).toBe(
      status.UNAVAILABLE,
    );

    // And back, noticed by the file check alone.
    const back = certs.leaf(ca, "localhost", "server", "back");
    copyFileSync(back.keyFile, rotating.keyFile);
    copyFileSync(back.certFile, rotating.certFile);
    await until(
      () =>
        client(mesh.address, { ca: ca.cert })
          .listTopics()
          .then(
            () => true,
            () => false,
          ),
      "the broker to serve the certificate the files now hold",
    );
  });

  it("keeps the old certificates when the new files do not load", async () => {
    const broken = certs.leaf(ca, "localhost", "server", "broken");
    const mesh = await broker(tlsEnv({ PGMESH_TLS_CERT: broken.certFile, PGMESH_TLS_KEY: broken.keyFile }), {
      ca: ca.cert,
    });
    // A key that does not belong to the certificate.
    copyFileSync(otherCa.keyFile, broken.keyFile);
    mesh.broker.reloadCertificates();
    await client(mesh.address, { ca: ca.cert }).listTopics();
  });
});

describe("mutual TLS", () => {
  let mesh: TestBroker;
  beforeAll(async () => {
    mesh = await broker(tlsEnv({ PGMESH_TLS_CLIENT_CA: ca.certFile }), {
      ca: ca.cert,
      cert: goodClient.cert,
      key: goodClient.key,
    });
  });

  it("serves a client with a certificate from the client CA", async () => {
    await mesh.client.createTopic("mtls.topic");
    expect((await mesh.client.getTopic("mtls.topic")).name).toBe("mtls.topic");
  });

  it("the CLI connects with a CA file and a client certificate, and is refused without the certificate", {
    timeout: 60_000,
  }, async () => {
    const cli = (...args: string[]) =>
      run(process.execPath, [pgmesh, "-a", mesh.address, "--ca-file", ca.certFile, ...args]);
    const listed = await cli(
      "--cert-file",
      goodClient.certFile,
      "--key-file",
      goodClient.keyFile,
      "topics",
      "list",
    );
    expect(listed.stdout).toContain("mtls.topic");
    const refused = await cli("topics", "list").then(
      () => undefined,
      (error: { code: number; stderr: string }) => error,
    );
    expect(refused?.code).toBe(1);
    expect(refused?.stderr).toContain("(UNAVAILABLE)");
  });

  it("refuses a client without a certificate, and one whose certificate another CA signed", async () => {
    const missing = await rejection(client(mesh.address, { ca: ca.cert }).listTopics());
    expect(missing.code).toBe(status.UNAVAILABLE);
    const wrong = await rejection(
      client(mesh.address, { ca: ca.cert, cert: forgedClient.cert, key: forgedClient.key }).listTopics(),
    );
    expect(wrong.code).toBe(status.UNAVAILABLE);
  });
});

describe("mutual TLS with authentication: the certificate's common name, as mapped, is the caller", () => {
  let mesh: TestBroker;
  const as = (pem: Pem) => client(mesh.address, { ca: ca.cert, cert: pem.cert, key: pem.key });
  beforeAll(async () => {
    mesh = await startTestBroker(
      db.url,
      tlsEnv({
        PGMESH_TLS_CLIENT_CA: ca.certFile,
        PGMESH_AUTH: "on",
        PGMESH_ADMIN_TOKEN: "an-admin-token-for-the-mtls-test-0123456789",
        PGMESH_CERT_PRINCIPALS: "orders.internal=orders-service",
      }),
      {
        tls: { ca: ca.cert, cert: goodClient.cert, key: goodClient.key },
        token: "an-admin-token-for-the-mtls-test-0123456789",
      },
    );
    brokers.push(mesh);
    await mesh.client.createTopic("orders");
    await mesh.client.createTopic("payments");
    await mesh.client.createPrincipal(
      "orders-service",
      ["publish:orders", "read:orders"],
      ["orders-service"],
    );
  });

  it("authorizes the principal the certificate's common name is mapped to", async () => {
    const orders = as(mappedClient);
    const [result] = await orders.publish("orders", [{ id: "o-1", source: "orders-service", type: "t" }]);
    expect(result?.duplicate).toBe(false);
    const denied = await rejection(
      orders.publish("payments", [{ id: "p-1", source: "orders-service", type: "t" }]),
    );
    expect(denied.code).toBe(status.PERMISSION_DENIED);
    expect(denied.details).toBe('permission denied: orders-service may not publish topic "payments"');
  });

  it("the audit log names the certificate by its SHA-256 fingerprint", async () => {
    await rejection(as(mappedClient).deleteTopic("payments"));
    const [record] = (await mesh.client.listAuditLog({ pageSize: 1 })).records;
    const fingerprint = new X509Certificate(mappedClient.cert).fingerprint256;
    expect(record).toMatchObject({
      principal: "orders-service",
      credential: `certificate sha256:${fingerprint}`,
      method: "DeleteTopic",
      result: "PERMISSION_DENIED",
    });
  });

  it("a certificate named like a principal is not that principal unless mapped (CN=admin is no admin)", async () => {
    for (const pem of [adminNamedClient, goodClient]) {
      const refused = await rejection(as(pem).listPrincipals());
      expect(refused.code).toBe(status.UNAUTHENTICATED);
      expect(refused.details).toMatch(/is not mapped to a principal \(PGMESH_CERT_PRINCIPALS\)$/);
    }
  });

  it("refuses a certificate whose common name is no principal", async () => {
    const refused = await rejection(as(strangerClient).listTopics());
    expect(refused.code).toBe(status.UNAUTHENTICATED);
    expect(refused.details).toContain("nobody-we-know");
  });
});
