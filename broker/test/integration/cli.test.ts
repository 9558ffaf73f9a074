// The pgmesh CLI as a user runs it (a real process) against a real broker: subscription policy,
// stats, dead letters and parked keys.
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { useTestBroker } from "../support/broker.ts";
import { FROM_SOURCE } from "../support/from-source.ts";
import { StreamProbe } from "../support/stream-probe.ts";

const pgmesh = fileURLToPath(new URL("../../bin/pgmesh.js", import.meta.url));
const run = promisify(execFile);
const t = useTestBroker();

beforeAll(async () => {});

const cli = async (...args: string[]) =>
  (await run(process.execPath, [...FROM_SOURCE, pgmesh, "-a", t.mesh.address, ...args])).stdout;

async function cliFails(...args: string[]): Promise<string> {
  try {
    await run(process.execPath, [...FROM_SOURCE, pgmesh, "-a", t.mesh.address, ...args]);
  } catch (error) {
    const { code, stderr } = error as { code: number; stderr: string };
    expect(code).toBe(1);
    return stderr;
  }
  throw new Error("expected the command to fail");
}

// Each CLI call is a Node process that compiles the TypeScript sources with tsx: 1-3 s on a busy
// machine, and a test makes up to eight.
describe("pgmesh CLI", { timeout: 120_000 }, () => {
  it("creates, shows, updates and measures a subscription with a delivery policy", async () => {
    await cli("topics", "create", "cli");
    const created = await cli(
      "subs",
      "create",
      "cli.sub",
      "--topic",
      "cli",
      "--max-attempts",
      "1",
      "--backoff-initial",
      "0",
      "--backoff-max",
      "0",
      "--ordered",
      "--filter",
      "attributes:kind",
    );
    expect(created).toContain("created subscription cli.sub on topic cli");
    expect(created).toContain("dead letter after 1 attempts");
    expect(created).toContain("ordered by ordering key, filter attributes:kind");
    const updated = await cli(
      "subs",
      "update",
      "cli.sub",
      "--ack-deadline",
      "30",
      "--backoff-multiplier",
      "3",
    );
    expect(updated).toContain("ack deadline 30s");
    expect(updated).toContain("x3");
    await cli(
      "publish",
      "cli",
      '{"id":"p1","type":"t","orderingKey":"k","attributes":{"kind":"x"},"data":{"n":1}}',
    );
    await cli("publish", "cli", '{"id":"p2","type":"t","orderingKey":"k","attributes":{"kind":"x"}}');
    await cli("publish", "cli", '{"id":"skipped","type":"t"}');
    // Nothing has leased yet: the three events are after the cursor. Its lag counts events before
    // the filter (which runs when the cursor is leased), so "skipped" is in it until then.
    expect(await cli("subs", "stats", "cli.sub")).toMatch(
      /^backlog 3\tcursor lag 3 \(\d+s, at position \d+\)\tin flight 0\toldest unacked \d+s\tdead letters 0\tparked keys 0\n$/,
    );
  });

  it("lists, redrives and purges dead letters, and lists and releases parked keys", async () => {
    const probe = await StreamProbe.open(t.mesh.client, "cli.sub");
    const [first] = await probe.waitForDeliveries(1);
    await probe.settleAndWait(() => probe.nack([first?.ackId ?? ""], "broken payload"), 1);
    const listed = (await cli("dead-letters", "list", "cli.sub"))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(listed).toHaveLength(1);
    expect(listed[0]).toMatchObject({ reason: "max_attempts", attempts: 1, lastError: "broken payload" });
    expect(listed[0].event).toMatchObject({ id: "p1", data: { n: 1 } });
    expect(await cli("keys", "list", "cli.sub")).toBe(`k\tdead letter ${listed[0].id}\twaiting 1\n`);

    expect(await cliFails("dlq", "redrive", "cli.sub")).toContain(
      "name dead letter ids, or filter options, or --all",
    );
    expect(await cli("dlq", "redrive", "cli.sub", listed[0].id)).toBe("redrove 1 dead letter(s)\n");
    expect(await cli("dlq", "redrive", "cli.sub", listed[0].id)).toBe("redrove 0 dead letter(s)\n");
    const [, again] = await probe.waitForDeliveries(2);
    expect(again?.event?.id).toBe("p1");
    await probe.settleAndWait(() => probe.reject([again?.ackId ?? ""], "still broken"), 1);
    expect(await cli("dlq", "list", "cli.sub", "--reason", "rejected")).toContain(
      '"lastError":"still broken"',
    );
    expect(await cli("keys", "release", "cli.sub", "k")).toBe("released 1 key(s)\n");
    const [, , next] = await probe.waitForDeliveries(3);
    expect(next?.event?.id).toBe("p2");
    await probe.ackAndWait([next?.ackId ?? ""]);
    expect(await cli("dlq", "purge", "cli.sub", "--all")).toBe("purged 1 dead letter(s)\n");
    expect(await cli("dlq", "list", "cli.sub")).toBe("");
    await probe.close();
  });

  it("starts a subscription at the earliest event and seeks it to now, a position or a time", async () => {
    await cli("topics", "create", "cli.replay");
    await cli("publish", "cli.replay", '{"id":"r1","type":"t"}');
    await cli("publish", "cli.replay", '{"id":"r2","type":"t"}');
    await cli("subs", "create", "cli.replay.sub", "--topic", "cli.replay", "--start", "earliest");
    expect(await cli("subs", "stats", "cli.replay.sub")).toMatch(/\tcursor lag 2 /);
    expect(await cli("subs", "seek", "cli.replay.sub", "--now")).toMatch(
      /^seeked cli\.replay\.sub: delivering from position \d+; 0 pending or leased deliveries dropped\n$/,
    );
    expect(await cli("subs", "stats", "cli.replay.sub")).toMatch(/\tcursor lag 0 /);
    await cli("subs", "seek", "cli.replay.sub", "--time", "2000-01-01T00:00:00Z");
    expect(await cli("subs", "stats", "cli.replay.sub")).toMatch(/\tcursor lag 2 /);
    expect(await cliFails("subs", "seek", "cli.replay.sub")).toContain(
      "give exactly one of --time, --position, --earliest or --now",
    );
    expect(await cliFails("subs", "seek", "cli.replay.sub", "--time", "yesterday")).toContain(
      "yesterday is not an RFC 3339 time",
    );
    expect(await cliFails("subs", "create", "x.sub", "--topic", "cli.replay", "--start", "soon")).toContain(
      "soon is not now, earliest, an RFC 3339 time or a position",
    );
  });

  it("explains bad input and exits 1", async () => {
    expect(await cliFails("subs", "create", "x.sub", "--topic", "cli", "--max-attempts", "0")).toContain(
      "0 is not a positive whole number",
    );
    expect(
      await cliFails("subs", "create", "x.sub", "--topic", "cli", "--filter", "attributes.a = b"),
    ).toMatch(/error: filter: .*column/);
    expect(await cliFails("dlq", "list", "nope")).toContain(
      "error: subscription nope does not exist (NOT_FOUND)",
    );
    expect(await cliFails("dlq", "list", "cli.sub", "--reason", "bored")).toContain(
      "reason must be max_attempts or rejected",
    );
  });

  it("prints its version, and one line and the usage for an unknown flag, never a stack trace", async () => {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"));
    expect(await cli("--version")).toBe(`${pkg.version}\n`);
    const unknown = await cliFails("topics", "list", "--bogus");
    expect(unknown.split("\n")[0]).toBe("error: unknown option '--bogus'");
    expect(unknown).toContain("pgmesh --help lists the commands");
    expect(unknown).not.toMatch(/\n\s+at /);
  });

  it("start: a bad flag or value gets one line and the start usage, exit 2", async () => {
    for (const [args, message] of [
      [["--bogus"], "error: Unknown option '--bogus'"],
      [["--log-level", "loud"], "error: log level must be one of debug, info, warn, error, silent"],
      [["--grpc-address", "nowhere"], 'error: gRPC address must look like host:port, got "nowhere"'],
    ] as const) {
      const failed = await run(process.execPath, [...FROM_SOURCE, pgmesh, "start", ...args]).catch((e) => e);
      expect(failed.code).toBe(2);
      const [first, usage] = failed.stderr.split("\n");
      expect(first).toContain(message);
      expect(usage).toMatch(/^usage: pgmesh start \[--database-url <url>\]/);
      expect(failed.stderr).not.toMatch(/\n\s+at /);
    }
  });

  it("says when no broker answers, at the default port for a host given without one", async () => {
    const failed = await run(process.execPath, [
      ...FROM_SOURCE,
      pgmesh,
      "-a",
      "127.0.0.3",
      "topics",
      "list",
    ]).catch((e) => e);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toBe(
      "error: no broker answers at 127.0.0.3:50051 (UNAVAILABLE). Start one with `npx pgmesh start`, or point -a / PGMESH_ADDRESS at a running broker.\n",
    );
  });

  it("says so when a listing is empty", async () => {
    await cli("topics", "create", "cli.empty");
    await cli("subs", "create", "cli.empty.sub", "--topic", "cli.empty", "--ordered");
    expect(await cli("subs", "list", "--topic", "nothing.here")).toBe(
      "no subscriptions on topic nothing.here\n",
    );
    expect(await cli("keys", "list", "cli.empty.sub")).toBe("no parked keys in cli.empty.sub\n");
    const listed = await run(process.execPath, [
      ...FROM_SOURCE,
      pgmesh,
      "-a",
      t.mesh.address,
      "dlq",
      "list",
      "cli.empty.sub",
    ]);
    expect(listed.stdout).toBe("");
    expect(listed.stderr).toBe("no dead letters in cli.empty.sub\n");
  });
});
