// The overview with 1,000 topics and 1,000 subscriptions: the first page is painted within a
// second of navigation, paged 50 at a time, and a search finds one among them; and a subscription
// with 100,000 dead letters pages through them. Prints the figures.
import { existsSync } from "node:fs";
import { type Browser, chromium } from "playwright-core";
import postgres from "postgres";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startTestBroker, type TestBroker } from "../support/broker.ts";
import { createTestDatabase, type TestDatabase } from "../support/database.ts";
import { until } from "../support/until.ts";

const CHROMIUM = process.env.PGMESH_CHROMIUM ?? "/usr/bin/chromium";
const N = 1000;
let db: TestDatabase;
let mesh: TestBroker;
let browser: Browser;

/** Runs `work` for 0..n-1, `width` at a time. */
async function inParallel(n: number, width: number, work: (i: number) => Promise<unknown>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < n) await work(next++);
    }),
  );
}

const name = (i: number) => `scale.t${String(i).padStart(4, "0")}`;

beforeAll(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(`${CHROMIUM} is missing: apt-get install chromium (.ci/run does)`);
  db = await createTestDatabase();
  mesh = await startTestBroker(db.url, { PGMESH_METRICS_REFRESH_MS: "1000" });
  const started = Date.now();
  await inParallel(N, 8, (i) => mesh.client.createTopic(name(i)));
  await inParallel(N, 8, (i) => mesh.client.createSubscription(`${name(i)}.sub`, name(i)));
  console.log(`created ${N} topics and ${N} subscriptions in ${Date.now() - started} ms`);
  await until(
    async () => (await mesh.client.listSubscriptionSummaries({ pageSize: 1 })).totalSize === N,
    "the gauge refresh",
    30_000,
  );
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu"] });
}, 300_000);

afterAll(async () => {
  await browser?.close();
  await mesh?.stop();
  await db?.drop();
});

it("paints the overview of 1,000 topics and 1,000 subscriptions within a second, paged and searchable", async () => {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const url = `http://${mesh.broker.consoleAddress}/`;
  await page.goto(url);
  await page.locator("tr[data-subscription]").first().waitFor(); // warm: the broker's first calls
  const times: number[] = [];
  for (let round = 0; round < 5; round++) {
    await page.goto("about:blank");
    await page.goto(url);
    await page.locator("tr[data-subscription]").first().waitFor();
    // From the start of the navigation to the first row on screen, by the page's own clock.
    times.push(await page.evaluate(() => Math.round(performance.now())));
  }
  console.log(`overview first paint with ${N} topics and ${N} subscriptions: ${times.join(", ")} ms`);
  expect(times.sort((a, b) => a - b)[2]).toBeLessThan(1000);
  expect(await page.locator("tr[data-subscription]").count()).toBe(50);
  expect(await page.locator("tr[data-topic]").count()).toBe(50);
  await page.getByText("page 1 of 20").first().waitFor();
  await page.getByLabel("search").fill("t0999");
  await page.locator('tr[data-subscription="scale.t0999.sub"]').waitFor();
  await until(async () => (await page.locator("tr[data-subscription]").count()) === 1, "the search");
  expect(await page.locator("tr[data-topic]").count()).toBe(1);
});

it("pages through 100,000 dead letters", async () => {
  const [published] = await mesh.client.publish(name(0), [{ id: "dead", source: "scale", type: "t" }]);
  expect(published).toBeDefined();
  const sql = postgres(db.url, { max: 1, onnotice: () => {} });
  try {
    // Written directly: 100,000 rejections through a consumer would take minutes.
    await sql`
      INSERT INTO pgmesh.dead_letters (subscription, event_seq, attempts, reason, last_error, first_failed_at)
      SELECT ${`${name(0)}.sub`}, e.seq, 5, 'max_attempts', 'failure ' || g, now()
      FROM generate_series(1, 100000) g, (SELECT seq FROM pgmesh.events WHERE topic_id = pgmesh.topic_id(${name(0)})) e`;
  } finally {
    await sql.end();
  }
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const started = Date.now();
  await page.goto(`http://${mesh.broker.consoleAddress}/#/subscriptions/${name(0)}.sub`);
  await page.getByText("page 1 of 2,000").waitFor({ timeout: 8_000 });
  await page.getByText("failure 1", { exact: true }).waitFor({ timeout: 8_000 });
  const firstPage = Date.now() - started;
  expect(await page.locator('[data-testid="dead-letters"] tbody tr').count()).toBe(50);
  await page.getByRole("button", { name: "Redrive all (100,000)" }).waitFor();
  const turned = Date.now();
  await page.getByRole("button", { name: "Next" }).click();
  await page.getByText("page 2 of 2,000").waitFor();
  await page.getByText("failure 51", { exact: true }).waitFor();
  const nextPage = Date.now() - turned;
  console.log(`100,000 dead letters: first page in ${firstPage} ms, the next in ${nextPage} ms`);
  expect(nextPage).toBeLessThan(2000);
  // A page deep in the list costs what the first does (keyset paging on the dead letter's id).
  const first = await mesh.client.listDeadLetters({ subscription: `${name(0)}.sub` }, 50);
  const lastId = Number(first.deadLetters[0]?.id) + 99_950 - 1;
  const deep = Date.now();
  const last = await mesh.client.listDeadLetters({ subscription: `${name(0)}.sub` }, 50, String(lastId));
  expect(Date.now() - deep).toBeLessThan(1000);
  expect(last.deadLetters.at(-1)?.lastError).toBe("failure 100000");
  expect(last.nextPageToken).toBe("");
});
