// protoc-gen-pgmesh end to end: `buf generate` runs ts-proto and the plugin (both local, from
// node_modules/.bin) on the fixtures in sdk/test/fixtures, into a temp dir under sdk/test (so that
// `@pgmesh/sdk` and @bufbuild/protobuf resolve from /work/main/node_modules). The fixture module
// imports pgmesh/v1/options.proto from the repository's proto/ dir: buf.fixture.yaml is a buf.yaml
// (passed with --config, buf run from the repository root) listing both directories as modules.
import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FROM_SOURCE } from "../../broker/test/support/from-source.ts";
import { topicConstName } from "../src/codegen/protoc-gen-pgmesh.ts";
import type { EventType } from "../src/event-type.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));
const fixtures = "sdk/test/fixtures";
/** The plugin's sources, as buf.gen.yaml's `local` (the fixture template has the same). */
const PLUGIN_FROM_SOURCE = ["node", ...FROM_SOURCE, "sdk/bin/protoc-gen-pgmesh.js"];
const env = { ...process.env, PATH: `${join(root, "node_modules/.bin")}:${process.env.PATH ?? ""}` };

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], cwd = root): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(join(root, "node_modules/.bin", command), args, { cwd, env }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** `buf generate` of the fixture files under `paths` into `out`, with the fixture template or `template`. */
function bufGenerate(
  out: string,
  paths: string[],
  template = `${fixtures}/buf.gen.yaml`,
): Promise<RunResult> {
  const pathArgs = paths.flatMap((p) => ["--path", p]);
  return run("buf", [
    "generate",
    "--template",
    template,
    "--config",
    `${fixtures}/buf.fixture.yaml`,
    ...pathArgs,
    "-o",
    out,
    ".",
  ]);
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

let tmp: string;
let gen: string;
let generated: string;

beforeAll(async () => {
  // A dot-dir: tsc's `include` and the vitest globs do not pick it up.
  tmp = await mkdtemp(join(root, "sdk/test/.tmp-codegen-"));
  // options.proto is passed too: a file to generate without event messages must yield no file.
  const result = await bufGenerate(tmp, [`${fixtures}/shop`, "proto/pgmesh/v1/options.proto"]);
  expect(result.stderr).toBe("");
  expect(result.code).toBe(0);
  gen = join(tmp, "gen");
  generated = await readFile(join(gen, "shop/v1/orders_pgmesh.ts"), "utf8");
});

afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe("protoc-gen-pgmesh", () => {
  it("generates one _pgmesh.ts file per .proto file with event messages", async () => {
    const files = await filesUnder(gen);
    expect(files).toContain("shop/v1/orders.ts");
    expect(files.filter((f) => f.endsWith("_pgmesh.ts"))).toEqual(["shop/v1/orders_pgmesh.ts"]);
  });

  it("declares an event per marked message and a group per topic", () => {
    expect(generated).toContain(`import { defineEvent } from "@pgmesh/sdk";`);
    expect(generated).toContain(`import type { EventType } from "@pgmesh/sdk";`);
    expect(generated).toContain(
      `import { OrderCancelled, OrderPlaced, PaymentTaken, Refund_Issued } from "./orders.ts";`,
    );
    expect(generated).toContain(
      `export const OrderPlacedEvent: EventType<OrderPlaced> = defineEvent("shop.orders", "shop.v1.OrderPlaced", OrderPlaced);`,
    );
    expect(generated).toContain(
      `export const OrderCancelledEvent: EventType<OrderCancelled> = defineEvent("shop.orders", "shop.v1.OrderCancelled", OrderCancelled);`,
    );
    expect(generated).toContain(
      `export const PaymentTakenEvent: EventType<PaymentTaken> = defineEvent("shop.payments", "shop.v1.PaymentTaken", PaymentTaken);`,
    );
    expect(generated).toContain(
      `export const Refund_IssuedEvent: EventType<Refund_Issued> = defineEvent("shop.payments", "shop.v1.Refund.Issued", Refund_Issued);`,
    );
    expect(generated).toContain(
      [
        "export const ShopOrdersTopic = {",
        `  name: "shop.orders",`,
        "  events: [OrderPlacedEvent, OrderCancelledEvent],",
        "} as const;",
      ].join("\n"),
    );
    expect(generated).toContain(
      [
        "export const ShopPaymentsTopic = {",
        `  name: "shop.payments",`,
        "  events: [PaymentTakenEvent, Refund_IssuedEvent],",
        "} as const;",
      ].join("\n"),
    );
    // JSDoc: the proto message, its topic and its own comment.
    expect(generated).toContain(
      [
        "/**",
        ' * Event type of message `shop.v1.OrderPlaced`, published on topic "shop.orders".',
        " *",
        " * A customer placed an order.",
        " *",
        " * @generated from message shop.v1.OrderPlaced",
        " */",
      ].join("\n"),
    );
    // The plain messages (LineItem, the Refund container) generate nothing.
    expect(generated).not.toContain("LineItem");
    expect(generated).not.toMatch(/\bRefund\b(?!_Issued|\.Issued)/);
    expect(generated.match(/^export const /gm)).toHaveLength(6);
  });

  it("generates working event types", async () => {
    const events: Record<string, unknown> = await import(join(gen, "shop/v1/orders_pgmesh.ts"));
    const codecs: Record<string, unknown> = await import(join(gen, "shop/v1/orders.ts"));
    const placedEvent = events.OrderPlacedEvent as EventType<unknown>;
    expect(placedEvent.topic).toBe("shop.orders");
    expect(placedEvent.typeName).toBe("shop.v1.OrderPlaced");
    expect(placedEvent.typeUrl).toBe("type.googleapis.com/shop.v1.OrderPlaced");
    expect((events.Refund_IssuedEvent as EventType<unknown>).typeName).toBe("shop.v1.Refund.Issued");

    const codec = codecs.OrderPlaced as {
      fromPartial(object: object): unknown;
      encode(message: unknown): { finish(): Uint8Array };
    };
    const message = codec.fromPartial({
      orderId: "o-1",
      totalCents: 1250,
      currency: "EUR",
      items: [{ sku: "tea", quantity: 2 }],
    });
    const bytes = placedEvent.encode(message);
    expect(bytes).toEqual(codec.encode(message).finish());
    expect(placedEvent.decode(bytes)).toEqual(message);

    expect(events.ShopOrdersTopic).toEqual({
      name: "shop.orders",
      events: [events.OrderPlacedEvent, events.OrderCancelledEvent],
    });
    expect(events.ShopPaymentsTopic).toEqual({
      name: "shop.payments",
      events: [events.PaymentTakenEvent, events.Refund_IssuedEvent],
    });
  });

  it("makes a message of the wrong type a compile error", async () => {
    const check = [
      `import type { EventType } from "@pgmesh/sdk";`,
      `import { OrderCancelled, OrderPlaced } from "./gen/shop/v1/orders.ts";`,
      `import { OrderCancelledEvent, OrderPlacedEvent } from "./gen/shop/v1/orders_pgmesh.ts";`,
      "",
      "function publish(type: EventType<OrderPlaced>, m: OrderPlaced): string {",
      "  return type.typeUrl + m.orderId;",
      "}",
      `const placed = OrderPlaced.fromPartial({ orderId: "o-1", totalCents: 1250 });`,
      `const cancelled = OrderCancelled.fromPartial({ orderId: "o-1", reason: "changed my mind" });`,
      "publish(OrderPlacedEvent, placed);",
      "// @ts-expect-error an OrderCancelled is not an OrderPlaced",
      "publish(OrderPlacedEvent, cancelled);",
      "// @ts-expect-error nor is the OrderCancelled event type an OrderPlaced one",
      "publish(OrderCancelledEvent, placed);",
      "",
    ].join("\n");
    const unmarked = check
      .split("\n")
      .filter((line) => !line.startsWith("// @ts-expect-error"))
      .join("\n");
    const tsconfig = (file: string) =>
      `${JSON.stringify({ extends: join(root, "tsconfig.base.json"), files: [file] }, null, 2)}\n`;
    await Promise.all([
      writeFile(join(tmp, "check.ts"), check),
      writeFile(join(tmp, "unmarked.ts"), unmarked),
      writeFile(join(tmp, "tsconfig.check.json"), tsconfig("check.ts")),
      writeFile(join(tmp, "tsconfig.unmarked.json"), tsconfig("unmarked.ts")),
    ]);

    const [ok, failing] = await Promise.all([
      run("tsc", ["-p", "tsconfig.check.json", "--pretty", "false"], tmp),
      run("tsc", ["-p", "tsconfig.unmarked.json", "--pretty", "false"], tmp),
    ]);
    expect(ok.stdout + ok.stderr).toBe("");
    expect(ok.code).toBe(0);

    expect(failing.code).not.toBe(0);
    const errors = failing.stdout.split("\n").filter((line) => line.includes("error TS"));
    expect(errors).toHaveLength(2);
    expect(errors[0]).toMatch(/^unmarked\.ts\(11,27\): error TS2345: .*'OrderCancelled'.*'OrderPlaced'/);
    expect(errors[1]).toMatch(/^unmarked\.ts\(12,9\): error TS2345: .*EventType<OrderCancelled>/);
  }, 60_000);

  it("follows import_extension=js for the import of ts-proto's file", async () => {
    const out = join(tmp, "js");
    const template = JSON.stringify({
      version: "v2",
      plugins: [{ local: PLUGIN_FROM_SOURCE, out: "gen", opt: ["import_extension=js"] }],
    });
    const result = await bufGenerate(out, [`${fixtures}/shop`], template);
    expect(result.stderr).toBe("");
    const content = await readFile(join(out, "gen/shop/v1/orders_pgmesh.ts"), "utf8");
    expect(content).toContain(`} from "./orders.js";`);
    expect(content).toContain(`with parameter "target=ts,import_extension=js"`);
  });

  it("rejects an invalid topic name, naming the message and file", async () => {
    const out = join(tmp, "invalid");
    const result = await bufGenerate(out, [`${fixtures}/invalid`]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain(
      `protoc-gen-pgmesh: invalid topic "Shop Orders" in option (pgmesh.v1.event) on message invalid.v1.Shouted in invalid/v1/bad_topic.proto: a topic name must be 1-100 characters`,
    );
  });

  it("names topic groups in PascalCase", () => {
    expect(topicConstName("orders")).toBe("OrdersTopic");
    expect(topicConstName("shop.orders")).toBe("ShopOrdersTopic");
    expect(topicConstName("shop-eu_west.v2")).toBe("ShopEuWestV2Topic");
  });
});
