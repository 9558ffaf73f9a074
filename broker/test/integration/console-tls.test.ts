// The web console under TLS: HTTPS with the broker's certificate (and the new one after a reload),
// no plaintext; and a client certificate under mutual TLS, as the gRPC port requires.
import { copyFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { request } from "node:https";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestBroker, type TestBroker } from "../support/broker.ts";
import { type Pem, TestCertificates } from "../support/certificates.ts";
import { createTestDatabase, type TestDatabase } from "../support/database.ts";

const certs = new TestCertificates();
const ca = certs.ca("console-ca");
const nextCa = certs.ca("console-next-ca");
const client = certs.leaf(ca, "ops", "client");

let db: TestDatabase;
const brokers: TestBroker[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  for (const b of brokers) await b.stop();
  await db?.drop();
  certs.remove();
});

/** GET / over HTTPS trusting `trusted`; the status, or the error's code. */
function get(address: string, trusted: Pem, identity?: Pem): Promise<number | string> {
  const colon = address.lastIndexOf(":");
  return new Promise((resolve) => {
    const req = request(
      {
        host: "127.0.0.1",
        servername: "localhost",
        port: Number(address.slice(colon + 1)),
        path: "/",
        ca: trusted.cert,
        cert: identity?.cert,
        key: identity?.key,
        agent: false,
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    req.end();
  });
}

function plainGet(address: string): Promise<number | string> {
  const colon = address.lastIndexOf(":");
  return new Promise((resolve) => {
    const req = httpRequest(
      { host: "127.0.0.1", port: Number(address.slice(colon + 1)), path: "/" },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    req.setTimeout(2_000, () => req.destroy(new Error("timeout")));
    req.end();
  });
}

describe("the console under TLS", () => {
  it("serves HTTPS with the broker's certificate, takes a reloaded one, and no plaintext", async () => {
    const server = certs.leaf(ca, "localhost", "server", "console-server");
    const mesh = await startTestBroker(
      db.url,
      { PGMESH_TLS_CERT: server.certFile, PGMESH_TLS_KEY: server.keyFile },
      { tls: { ca: ca.cert } },
    );
    brokers.push(mesh);
    const address = mesh.broker.consoleAddress as string;
    expect(await get(address, ca)).toBe(200);
    expect(await get(address, nextCa)).not.toBe(200);
    expect(await plainGet(address)).not.toBe(200);

    const next = certs.leaf(nextCa, "localhost", "server", "console-next");
    copyFileSync(next.certFile, server.certFile);
    copyFileSync(next.keyFile, server.keyFile);
    mesh.broker.reloadCertificates();
    expect(await get(address, nextCa)).toBe(200);
    expect(await get(address, ca)).not.toBe(200);
  });

  it("under mutual TLS, wants a client certificate from the client CA", async () => {
    const server = certs.leaf(ca, "localhost", "server", "console-mutual");
    const mesh = await startTestBroker(
      db.url,
      { PGMESH_TLS_CERT: server.certFile, PGMESH_TLS_KEY: server.keyFile, PGMESH_TLS_CLIENT_CA: ca.certFile },
      { tls: { ca: ca.cert, cert: client.cert, key: client.key } },
    );
    brokers.push(mesh);
    const address = mesh.broker.consoleAddress as string;
    expect(await get(address, ca, client)).toBe(200);
    expect(await get(address, ca)).not.toBe(200);
  });
});
