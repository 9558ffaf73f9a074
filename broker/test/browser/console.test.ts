// The web console in a real browser (Debian's chromium, driven by playwright-core): sign in,
// watch a publish move the overview, see a rejected event's dead letter decoded, redrive it to the
// subscriber, find a read-only token offered no redrive and its forged request refused, and ride
// out a broker restart. Takes the README's screenshots: into docs/ with PGMESH_SCREENSHOTS=docs
// (they show times, so writing them on every run would leave the clone changed), else into a
// temporary folder, checked there.
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Topic } from "@pgmesh/proto/pgmesh/v1/admin";
import { reject } from "@pgmesh/sdk";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CONSOLE_FILES } from "../../src/server/console/console-server.ts";
import { startTestBroker, type TestBroker } from "../support/broker.ts";
import { createTestDatabase, type TestDatabase } from "../support/database.ts";
import { freePort } from "../support/free-port.ts";
import { until } from "../support/until.ts";

const CHROMIUM = process.env.PGMESH_CHROMIUM ?? "/usr/bin/chromium";
const ADMIN_TOKEN = "console-browser-admin-token-0123456789abcdef";
const SCHEMA = fileURLToPath(new URL("../../descriptors/pgmesh.binpb", import.meta.url));
const screenshots =
  process.env.PGMESH_SCREENSHOTS === "docs"
    ? fileURLToPath(new URL("../../../docs/", import.meta.url))
    : mkdtempSync(join(tmpdir(), "pgmesh-console-"));
const docs = (name: string) => join(screenshots, name);

/** A screenshot that is a real picture: a PNG of the page's width, not an empty file. */
function expectPicture(path: string, width: number) {
  const png = readFileSync(path);
  expect(png.subarray(1, 4).toString()).toBe("PNG");
  expect(png.readUInt32BE(16)).toBe(width);
  expect(png.length).toBeGreaterThan(20_000);
}

let db: TestDatabase;
let mesh: TestBroker;
let consoleAddress: string;
let browser: Browser;
let viewerToken: string;
const env = () => ({
  PGMESH_AUTH: "on",
  PGMESH_ADMIN_TOKEN: ADMIN_TOKEN,
  PGMESH_CONSOLE_ADDRESS: consoleAddress,
});

async function signedIn(token: string): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  await page.goto(`http://${consoleAddress}/`);
  await page.getByLabel("token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  return page;
}

const orderPayload = (name: string) => ({
  typeUrl: "type.googleapis.com/pgmesh.v1.Topic",
  value: Buffer.from(Topic.encode({ name, createTime: undefined, retention: undefined }).finish()),
});

beforeAll(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(`${CHROMIUM} is missing: apt-get install chromium (.ci/run does)`);
  if (!existsSync(CONSOLE_FILES) || readdirSync(CONSOLE_FILES).length === 0) {
    throw new Error("the console is not built: npm run build");
  }
  db = await createTestDatabase();
  consoleAddress = `127.0.0.1:${await freePort()}`;
  mesh = await startTestBroker(db.url, env(), { token: ADMIN_TOKEN });
  await mesh.client.createTopic("shop.orders");
  await mesh.client.setTopicSchema("shop.orders", readFileSync(SCHEMA), ["pgmesh.v1.Topic"]);
  await mesh.client.createSubscription("shop.orders.fulfil", "shop.orders", { maxDeliveryAttempts: 3 });
  await mesh.client.createSubscription("shop.orders.audit", "shop.orders");
  await mesh.client.createTopic("shop.payments");
  await mesh.client.createPrincipal("viewer", ["read:*"]);
  viewerToken = (await mesh.client.createToken("viewer", { description: "read-only" })).token;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu"] });
});

afterAll(async () => {
  await browser?.close();
  await mesh?.stop();
  await db?.drop();
});

describe("the web console", { timeout: 60_000 }, () => {
  let admin: Page;

  it("asks for a token, refuses a wrong one with the broker's reason, and signs in", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`http://${consoleAddress}/`);
    await page.getByLabel("token").fill("not-a-token-0000000000000000000000000");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByText("the token is not valid").waitFor();
    await context.close();
    admin = await signedIn(ADMIN_TOKEN);
    await admin.locator('tr[data-subscription="shop.orders.fulfil"]').waitFor();
    expect(await admin.getByRole("link", { name: "Access" }).count()).toBe(1);
  });

  it("shows a publish through gRPC as backlog and publish rate, live", async () => {
    const row = admin.locator('tr[data-subscription="shop.orders.fulfil"]');
    await expect.poll(() => row.locator('[data-col="backlog"]').textContent()).toBe("0");
    await mesh.client.publish(
      "shop.orders",
      Array.from({ length: 20 }, (_, i) => ({
        id: `o-${i}`,
        source: "shop",
        type: "pgmesh.v1.Topic",
        data: orderPayload(`order-${i}`),
      })),
    );
    await expect
      .poll(() => row.locator('[data-col="backlog"]').textContent(), { timeout: 10_000 })
      .toBe("20");
    const rate = admin.locator('tr[data-topic="shop.orders"] [data-col="publish-rate"]');
    await expect.poll(() => rate.textContent(), { timeout: 10_000 }).not.toBe("0/s");
    // A second publish a poll later, so that the screenshot's charts have a line to draw.
    await mesh.client.publish(
      "shop.orders",
      Array.from({ length: 10 }, (_, i) => ({
        id: `o-${20 + i}`,
        source: "shop",
        type: "pgmesh.v1.Topic",
        data: orderPayload(`order-${20 + i}`),
      })),
    );
    await expect
      .poll(() => row.locator('[data-col="backlog"]').textContent(), { timeout: 10_000 })
      .toBe("30");
    await admin.screenshot({ path: docs("console-overview.png") });
    expectPicture(docs("console-overview.png"), 1400);
  });

  it("shows a rejected event's dead letter decoded, and a redrive reaches the subscriber", async () => {
    await mesh.client.publish("shop.orders", [
      { id: "bad-1", source: "shop", type: "pgmesh.v1.Topic", data: orderPayload("order-without-address") },
    ]);
    const seen: string[] = [];
    const subscriber = mesh.client.subscribeRaw(
      "shop.orders.fulfil",
      async (event) => {
        seen.push(event.id);
        if (event.id === "bad-1" && seen.filter((id) => id === "bad-1").length === 1) {
          throw reject("no address to ship to");
        }
      },
      { consumerName: "fulfilment" },
    );
    await until(
      async () => (await mesh.client.subscriptionStats("shop.orders.fulfil")).deadLetters === 1,
      "the dead letter",
    );
    await admin.goto(`http://${consoleAddress}/#/subscriptions/shop.orders.fulfil`);
    const deadLetter = admin.locator('[data-testid="dead-letters"] tbody tr');
    await deadLetter.first().waitFor();
    expect(await deadLetter.count()).toBe(1);
    expect(await deadLetter.locator('[data-payload="json"]').textContent()).toContain(
      '"name": "order-without-address"',
    );
    expect(await deadLetter.textContent()).toContain("rejected: no address to ship to");
    await admin.screenshot({ path: docs("console-dead-letter.png"), fullPage: true });
    expectPicture(docs("console-dead-letter.png"), 1400);

    await admin.getByRole("button", { name: "Redrive all (1)" }).click();
    await admin.getByText("Redrive all 1 dead letter of shop.orders.fulfil?").waitFor();
    await admin.getByRole("button", { name: "Confirm" }).click();
    await admin.getByText("1 dead letter redriven").waitFor();
    await until(
      () => seen.filter((id) => id === "bad-1").length === 2,
      "the redriven event at the subscriber",
    );
    await admin.getByText("no dead letters").waitFor();
    await subscriber.close();
  });

  it("offers a read-only token no redrive, and refuses its forged request", async () => {
    await mesh.client.publish("shop.orders", [
      { id: "bad-2", source: "shop", type: "pgmesh.v1.Topic", data: orderPayload("x") },
    ]);
    const viewer = await signedIn(viewerToken);
    expect(await viewer.getByRole("link", { name: "Access" }).count()).toBe(0);
    await viewer.goto(`http://${consoleAddress}/#/subscriptions/shop.orders.fulfil`);
    await viewer
      .getByText('permission denied: viewer may not manage subscription "shop.orders.fulfil"')
      .waitFor();
    await viewer.getByRole("heading", { name: "Policy" }).waitFor();
    expect(await viewer.getByRole("button", { name: /Redrive|Purge|Seek|Release/ }).count()).toBe(0);
    const forged = await viewer.evaluate(async (token) => {
      const response = await fetch("/pgmesh.v1.AdminService/RedriveDeadLetters", {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        body: JSON.stringify({ filter: { subscription: "shop.orders.fulfil" } }),
      });
      return { status: response.status, body: await response.json() };
    }, viewerToken);
    expect(forged).toEqual({
      status: 403,
      body: {
        code: "permission_denied",
        message: 'permission denied: viewer may not manage subscription "shop.orders.fulfil"',
      },
    });
    await viewer.context().close();
  });

  it("shows a topic's schema and its events, decoded, newest first or from a position", async () => {
    await admin.goto(`http://${consoleAddress}/#/topics/shop.orders`);
    const schema = admin.locator("section", { hasText: "Schema" });
    await schema.getByText("pgmesh.v1.Topic", { exact: true }).waitFor();
    // The message's fields, with their numbers and types.
    expect(await schema.textContent()).toMatch(
      /1name.*string.*2create_time.*google\.protobuf\.Timestamp.*3retention/,
    );
    const events = admin.locator('[data-testid="events"] tbody tr');
    await events.first().waitFor();
    expect(await events.count()).toBe(20);
    expect(await events.first().locator('[data-payload="json"]').textContent()).toContain('"name": "x"');
    await admin.getByLabel("browse from").selectOption("position");
    await admin.getByLabel("from", { exact: true }).fill("1");
    await admin.getByRole("button", { name: "Show" }).click();
    await expect
      .poll(() => events.first().locator('[data-payload="json"]').textContent())
      .toContain('"name": "order-0"');
  });

  it("creates a token for an admin, shows it once, and revokes it", async () => {
    await admin.getByRole("link", { name: "Access" }).click();
    await admin.getByRole("cell", { name: "viewer", exact: true }).first().waitFor();
    await admin.getByLabel("principal").selectOption("viewer");
    await admin.getByLabel("description").fill("made in the console");
    await admin.getByRole("button", { name: "Create token" }).click();
    const token = (await admin.getByTestId("new-token").textContent()) ?? "";
    expect((await mesh.client.listTokens("viewer")).map((t) => t.description)).toContain(
      "made in the console",
    );
    const made = (await mesh.client.listTokens("viewer")).find(
      (t) => t.description === "made in the console",
    );
    expect(token.length).toBeGreaterThan(30);
    await admin.getByRole("button", { name: "I have copied it" }).click();
    expect(await admin.getByTestId("new-token").count()).toBe(0);
    await admin
      .locator("tr", { hasText: "made in the console" })
      .getByRole("button", { name: "Revoke" })
      .click();
    await admin.getByText(`Revoke token ${made?.id}?`).waitFor();
    await admin.getByRole("button", { name: "Confirm" }).click();
    await until(
      async () =>
        (await mesh.client.listTokens("viewer")).find((t) => t.id === made?.id)?.revokeTime !== undefined,
      "the revocation",
    );
    await admin.getByRole("cell", { name: "CreateToken" }).first().waitFor();
  });

  it("rides out a broker restart: says it cannot reach it, then carries on", async () => {
    await admin.goto(`http://${consoleAddress}/#/`);
    const row = admin.locator('tr[data-subscription="shop.orders.audit"]');
    await row.waitFor();
    await mesh.stop();
    await admin
      .getByRole("alert")
      .getByText(/not reachable/)
      .waitFor({ timeout: 15_000 });
    mesh = await startTestBroker(db.url, env(), { token: ADMIN_TOKEN });
    const before = Number(await row.locator('[data-col="backlog"]').textContent());
    await mesh.client.publish("shop.orders", [
      { id: "after-restart", source: "shop", type: "pgmesh.v1.Topic", data: orderPayload("y") },
    ]);
    await expect
      .poll(() => row.locator('[data-col="backlog"]').textContent(), { timeout: 15_000 })
      .toBe(String(before + 1));
    expect(await admin.getByRole("alert").count()).toBe(0);
  });
});
