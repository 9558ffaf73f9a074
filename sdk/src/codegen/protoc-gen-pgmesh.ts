// protoc-gen-pgmesh: a buf/protoc plugin that runs next to ts-proto. For every message carrying
// the option `(pgmesh.v1.event).topic` (proto/pgmesh/v1/options.proto) it declares a typed event
// with `defineEvent`, using the codec ts-proto generated for the message, and groups the events
// of each topic:
//
//   // shop/v1/orders_pgmesh.ts, next to ts-proto's shop/v1/orders.ts
//   export const OrderPlacedEvent: EventType<OrderPlaced> = defineEvent("shop.orders", "shop.v1.OrderPlaced", OrderPlaced);
//   export const ShopOrdersTopic = { name: "shop.orders", events: [OrderPlacedEvent] } as const;
//
// Options (besides the standard @bufbuild/protoplugin ones, e.g. ts_nocheck=true):
// - import_extension=ts|js|none: the suffix of the import of ts-proto's file; match ts-proto's
//   `importSuffix`. Default "ts" here (the framework's own default is "none").
// - target=ts: the default here; ts-proto writes TypeScript only, so js/dts make little sense.
//
// The extension descriptor is taken from the CodeGeneratorRequest itself: a file that uses the
// option must import pgmesh/v1/options.proto, so the compiler sends that file along with it.

import { createRequire } from "node:module";
import {
  type DescExtension,
  type DescFile,
  type DescMessage,
  getOption,
  hasOption,
  isMessage,
  ScalarType,
} from "@bufbuild/protobuf";
import { reflect } from "@bufbuild/protobuf/reflect";
import type { CodeGeneratorRequest } from "@bufbuild/protobuf/wkt";
import { createEcmaScriptPlugin, getComments, type Plugin, type Schema } from "@bufbuild/protoplugin";

/** The full name of the message option that marks an event. */
export const EVENT_OPTION = "pgmesh.v1.event";

/** Topic names the broker accepts (broker/src/delivery/names.ts). */
export const TOPIC_NAME = /^[a-z][a-z0-9._-]{0,99}$/;

/** The suffix of the generated file: foo/v1/orders.proto -> foo/v1/orders_pgmesh.ts. */
export const FILE_SUFFIX = "_pgmesh";

/** Defaults applied when the plugin parameter does not set the option. */
const DEFAULT_PARAMETERS: Record<string, string> = { target: "ts", import_extension: "ts" };

/** An event message found in a file to generate. */
interface EventMessage {
  desc: DescMessage;
  topic: string;
}

// The same relative path from src/codegen and from the built dist/codegen.
const pkg = createRequire(import.meta.url)("../../package.json") as { version: string };

const base = createEcmaScriptPlugin({
  name: "protoc-gen-pgmesh",
  version: `v${pkg.version}`,
  generateTs,
});

export const protocGenPgmesh: Plugin = {
  name: base.name,
  version: base.version,
  run: (request) => base.run(withDefaultParameters(request)),
};

function withDefaultParameters(request: CodeGeneratorRequest): CodeGeneratorRequest {
  const given = request.parameter.split(",").filter((p) => p.length > 0);
  const keys = new Set(given.map((p) => p.split("=", 1)[0]));
  const defaults = Object.entries(DEFAULT_PARAMETERS)
    .filter(([key]) => !keys.has(key))
    .map(([key, value]) => `${key}=${value}`);
  return { ...request, parameter: [...defaults, ...given].join(",") };
}

function generateTs(schema: Schema): void {
  const extension = findEventExtension(schema.allFiles);
  if (!extension) return; // nothing imports options.proto, so no message can be an event
  const byFile = schema.files.map((file) => ({ file, events: eventMessages(schema, file, extension) }));
  const problems = byFile.flatMap(({ file, events }) => [
    ...events.flatMap((e) => topicProblems(file, e)),
    ...topicConstProblems(file, events),
  ]);
  if (problems.length > 0) throw new Error(problems.join("\n"));
  for (const { file, events } of byFile) {
    if (events.length > 0) generateFile(schema, file, events);
  }
}

/** The `pgmesh.v1.event` extension as compiled into the request, checked to be the one we know. */
function findEventExtension(files: readonly DescFile[]): DescExtension | undefined {
  for (const file of files) {
    const ext = file.extensions.find((e) => e.typeName === EVENT_OPTION);
    if (!ext) continue;
    const topic = ext.message?.fields.find((f) => f.name === "topic");
    if (
      ext.extendee.typeName !== "google.protobuf.MessageOptions" ||
      ext.message?.typeName !== "pgmesh.v1.EventOptions" ||
      topic?.fieldKind !== "scalar" ||
      topic.scalar !== ScalarType.STRING
    ) {
      throw new Error(
        `${file.proto.name}: ${EVENT_OPTION} is not the pgmesh option (a message option of type pgmesh.v1.EventOptions with a string "topic"); use pgmesh/v1/options.proto from pgmesh`,
      );
    }
    return ext;
  }
  return undefined;
}

function eventMessages(schema: Schema, file: DescFile, extension: DescExtension): EventMessage[] {
  const events: EventMessage[] = [];
  for (const desc of schema.typesInFile(file)) {
    if (desc.kind !== "message" || !hasOption(desc, extension)) continue;
    events.push({ desc, topic: readTopic(desc, extension) });
  }
  return events;
}

function readTopic(desc: DescMessage, extension: DescExtension): string {
  const value = getOption(desc, extension);
  if (extension.fieldKind !== "message" || !isMessage(value, extension.message)) return "";
  const options = reflect(extension.message, value);
  const field = options.fields.find((f) => f.name === "topic");
  const topic = field ? options.get(field) : undefined;
  return typeof topic === "string" ? topic : "";
}

function topicProblems(file: DescFile, { desc, topic }: EventMessage): string[] {
  if (TOPIC_NAME.test(topic)) return [];
  return [
    `invalid topic ${JSON.stringify(topic)} in option (${EVENT_OPTION}) on message ${desc.typeName} ` +
      `in ${file.proto.name}: a topic name must be 1-100 characters of a-z, 0-9, '.', '_' and '-', ` +
      `starting with a letter (${TOPIC_NAME})`,
  ];
}

function generateFile(schema: Schema, file: DescFile, events: EventMessage[]): void {
  const f = schema.generateFile(`${file.name}${FILE_SUFFIX}.ts`);
  f.preamble(file);
  const defineEvent = f.import("defineEvent", "@pgmesh/sdk");
  const eventType = f.import("EventType", "@pgmesh/sdk", true);
  // ts-proto's output for the same .proto file; the extension follows `import_extension`.
  const tsProtoFile = `./${file.name}.js`;

  for (const { desc, topic } of events) {
    const codec = f.import(tsProtoName(desc), tsProtoFile);
    f.print(f.jsDoc(eventDoc(desc, topic)));
    f.print(
      f.export("const", eventConstName(desc)),
      ": ",
      eventType,
      "<",
      codec,
      "> = ",
      defineEvent,
      "(",
      f.string(topic),
      ", ",
      f.string(desc.typeName),
      ", ",
      codec,
      ");",
    );
    f.print();
  }

  for (const [topic, members] of groupByTopic(events)) {
    f.print(f.jsDoc(topicDoc(file, topic, members)));
    f.print(f.export("const", topicConstName(topic)), " = {");
    f.print("  name: ", f.string(topic), ",");
    f.print("  events: [", members.map((e) => eventConstName(e.desc)).join(", "), "],");
    f.print("} as const;");
    f.print();
  }
}

/** The name ts-proto exports for a message: nested names joined with "_" (Outer_Inner). */
function tsProtoName(desc: DescMessage): string {
  const pkg = desc.file.proto.package;
  return (pkg ? desc.typeName.slice(pkg.length + 1) : desc.typeName).replaceAll(".", "_");
}

/** OrderPlaced -> OrderPlacedEvent. It cannot clash with a topic const (suffix "Topic"); an
 * imported ts-proto name that clashes with either is aliased by the framework. */
function eventConstName(desc: DescMessage): string {
  return `${tsProtoName(desc)}Event`;
}

/** "shop.orders" -> "ShopOrdersTopic". */
export function topicConstName(topic: string): string {
  const words = topic.split(/[._-]+/).filter((w) => w.length > 0);
  return `${words.map((w) => w[0].toUpperCase() + w.slice(1)).join("")}Topic`;
}

function groupByTopic(events: EventMessage[]): Map<string, EventMessage[]> {
  const groups = new Map<string, EventMessage[]>();
  for (const e of events) groups.set(e.topic, [...(groups.get(e.topic) ?? []), e]);
  return groups;
}

/** Two topics of one file must not map to the same const ("shop.orders" and "shop-orders"). */
function topicConstProblems(file: DescFile, events: EventMessage[]): string[] {
  const problems: string[] = [];
  const seen = new Map<string, string>();
  for (const topic of new Set(events.map((e) => e.topic))) {
    const name = topicConstName(topic);
    const other = seen.get(name);
    if (other !== undefined) {
      problems.push(
        `topics ${JSON.stringify(other)} and ${JSON.stringify(topic)} in ${file.proto.name} would both ` +
          `generate ${name}: declare their events in different files`,
      );
    }
    seen.set(name, topic);
  }
  return problems;
}

function eventDoc(desc: DescMessage, topic: string): string {
  const lines = [`Event type of message \`${desc.typeName}\`, published on topic ${JSON.stringify(topic)}.`];
  const leading = getComments(desc).leading?.trim();
  if (leading) lines.push("", ...leading.split("\n").map((l) => l.replace(/^ /, "")));
  lines.push("", `@generated from message ${desc.typeName}`);
  if (desc.deprecated) lines.push("@deprecated");
  return lines.join("\n");
}

function topicDoc(file: DescFile, topic: string, members: EventMessage[]): string {
  return [
    `The events on topic ${JSON.stringify(topic)} declared in ${file.proto.name}:`,
    ...members.map((e) => `- \`${e.desc.typeName}\``),
  ].join("\n");
}
