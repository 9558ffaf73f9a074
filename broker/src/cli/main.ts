// `pgmesh`: run the broker, manage topics and subscriptions, publish and tail events.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import type { ServiceError } from "@grpc/grpc-js";
import { status } from "@grpc/grpc-js";
import { DeadLetterReason, type Subscription } from "@pgmesh/proto/pgmesh/v1/admin";
import type { SubscribeResponse } from "@pgmesh/proto/pgmesh/v1/subscriber";
import { PgmeshClient, type SeekTarget, type SubscriptionPolicy } from "@pgmesh/sdk";
import { Command, InvalidArgumentError, Option } from "commander";
import { addAccessCommands, connectOptions } from "./access-commands.ts";
import { DEFAULT_PORT, withDefaultPort } from "./address.ts";
import { eventFromJson } from "./event-input.ts";
import { eventToJson } from "./format.ts";
import { encodeWithSchema, type SchemaCodec, schemaCodec } from "./schema-codec.ts";

// The same relative path from src/cli and from the built dist/cli.
const { version } = createRequire(import.meta.url)("../../package.json") as { version: string };

const program = new Command("pgmesh")
  .description("pgmesh: a gRPC event mesh on PostgreSQL")
  .version(version, "-V, --version", "print the version")
  .addOption(
    new Option("-a, --address <host[:port]>", `broker to talk to (port ${DEFAULT_PORT} when left out)`)
      .env("PGMESH_ADDRESS")
      .default(`127.0.0.1:${DEFAULT_PORT}`),
  )
  .addOption(new Option("--token <token>", "bearer token to authenticate with").env("PGMESH_TOKEN"))
  .addOption(
    new Option("--token-file <file>", "read the bearer token from this file").env("PGMESH_TOKEN_FILE"),
  )
  .addOption(new Option("--ca-file <file>", "connect over TLS, trusting this CA (PEM)").env("PGMESH_CA_FILE"))
  .addOption(
    new Option("--cert-file <file>", "client certificate for mutual TLS (PEM)").env("PGMESH_CERT_FILE"),
  )
  .addOption(new Option("--key-file <file>", "the client certificate's key (PEM)").env("PGMESH_KEY_FILE"))
  .addOption(new Option("--tls", "connect over TLS, trusting the system's CAs"))
  .showHelpAfterError("(pgmesh --help lists the commands; pgmesh <command> --help shows its options)");

const address = () => withDefaultPort(program.opts<{ address: string }>().address);
// A CLI call fails fast rather than retrying a publish for a minute.
const client = () =>
  new PgmeshClient(address(), { timeoutMs: 15_000, publishRetry: false, ...connectOptions(program.opts()) });

program
  .command("start")
  .description("run the broker in the foreground (embedded Postgres unless DATABASE_URL is set)")
  .allowUnknownOption()
  .helpOption(false)
  .argument(
    "[flags...]",
    "--database-url, --grpc-address, --metrics-address, --console-address, --data-dir, --log-level",
  )
  // Loaded only here: the broker (pg-boss, Postgres, metrics) is most of the CLI's start-up time.
  .action(async (flags: string[]) => (await import("../run.ts")).runBroker(flags));

const topics = program.command("topics").description("manage topics");
topics
  .command("create <name>")
  .description("create a topic")
  .option(
    "--retention <seconds>",
    "keep events nothing needs any more this long (default 604800, 7 days)",
    parseSeconds,
  )
  .action(
    withClient(async (c, name: string, options: { retention?: number }) => {
      const topic = await c.createTopic(name, { retentionSeconds: options.retention });
      console.log(`created topic ${topic.name}`);
    }),
  );
topics
  .command("update <name>")
  .description("change a topic's retention")
  .requiredOption("--retention <seconds>", "keep events nothing needs any more this long", parseSeconds)
  .action(
    withClient(async (c, name: string, options: { retention: number }) => {
      const topic = await c.updateTopic(name, { retentionSeconds: options.retention });
      console.log(`topic ${topic.name}: retention ${topic.retention?.seconds ?? 0}s`);
    }),
  );
topics
  .command("list")
  .description("list topics")
  .action(
    withClient(async (c) => {
      let token = "";
      do {
        const page = await c.listTopics(1000, token);
        for (const t of page.topics) {
          console.log(
            `${t.name}\tcreated ${t.createTime?.toISOString() ?? ""}\tretention ${t.retention?.seconds ?? 0}s`,
          );
        }
        if (!token && page.topics.length === 0)
          console.log("no topics (create one: pgmesh topics create <name>)");
        token = page.nextPageToken;
      } while (token);
    }),
  );
const schema = topics
  .command("schema")
  .description("bind a topic to Protobuf message types (the broker then validates payloads)");
schema
  .command("set <topic>")
  .description("bind the topic to message types from a `buf build -o schema.binpb` descriptor set")
  .requiredOption("-d, --descriptors <file>", "the FileDescriptorSet, e.g. from `buf build -o schema.binpb`")
  .requiredOption(
    "--type <names...>",
    "full names of the message types the topic takes, e.g. shop.v1.OrderPlaced",
  )
  .action(
    withClient(async (c, topic: string, options: { descriptors: string; type: string[] }) => {
      const set = await c.setTopicSchema(topic, readFileSync(options.descriptors), options.type);
      console.log(`topic ${topic} takes ${set?.messageTypes.join(", ")}`);
    }),
  );
schema
  .command("get <topic>")
  .description("show the message types a topic takes")
  .action(
    withClient(async (c, topic: string) => {
      const set = await c.getTopicSchema(topic);
      console.log(
        set ? `${set.messageTypes.join("\n")}` : `topic ${topic} has no schema: it takes any payload`,
      );
    }),
  );
schema
  .command("clear <topic>")
  .description("unbind the topic: it takes any payload again")
  .action(
    withClient(async (c, topic: string) => {
      await c.setTopicSchema(topic, new Uint8Array(), []);
      console.log(`topic ${topic} takes any payload`);
    }),
  );
topics
  .command("delete <name>")
  .description("delete a topic (it must have no subscriptions)")
  .action(
    withClient(async (c, name: string) => {
      await c.deleteTopic(name);
      console.log(`deleted topic ${name}`);
    }),
  );

const subscriptions = program.command("subscriptions").alias("subs").description("manage subscriptions");
subscriptions
  .command("create <name>")
  .description("create a subscription; it receives the events published from now on (or from --start)")
  .requiredOption("-t, --topic <topic>", "the topic to subscribe to")
  .option(
    "--ack-deadline <seconds>",
    "seconds a delivery stays leased before redelivery (default 60)",
    parseSeconds,
  )
  .option("--max-attempts <n>", "deliveries before an event is dead-lettered (default 5)", parseCount)
  .option("--no-dead-letter", "retry for ever instead of dead-lettering")
  .option("--backoff-initial <seconds>", "first retry delay (default 1)", parseSeconds)
  .option("--backoff-max <seconds>", "longest retry delay (default 60)", parseSeconds)
  .option("--backoff-multiplier <x>", "growth per retry (default 2)", Number)
  .option("--backoff-jitter <fraction>", "random spread of each delay, 0..1 (default 0.1)", Number)
  .option("--acked-retention <seconds>", "keep acked deliveries this long (default 0)", parseSeconds)
  .option("--ordered", "deliver events with the same ordering key in order, one at a time")
  .option("--filter <expression>", "only events whose attributes match, e.g. 'attributes.region = \"eu\"'")
  .option(
    "--start <where>",
    "where it starts: now (default), earliest (the oldest retained event), an RFC 3339 time, or a position",
    parseStart,
  )
  .action(
    withClient(
      async (
        c,
        name: string,
        options: PolicyOptions & { topic: string; ordered?: boolean; filter?: string; start?: SeekTarget },
      ) => {
        const sub = await c.createSubscription(name, options.topic, {
          ...policyOf(options),
          ordering: options.ordered,
          filter: options.filter,
          ...(options.start === undefined ? {} : { start: options.start }),
        });
        console.log(`created subscription ${sub.name} on topic ${sub.topic}`);
        console.log(describeSubscription(sub));
      },
    ),
  );
subscriptions
  .command("update <name>")
  .description("change a subscription's delivery policy (only the options given)")
  .option("--ack-deadline <seconds>", "seconds a delivery stays leased", parseSeconds)
  .option("--max-attempts <n>", "deliveries before dead-lettering", parseCount)
  .option(
    "--dead-letter <on|off>",
    "dead-letter exhausted and rejected events, or retry for ever",
    parseOnOff,
  )
  .option("--backoff-initial <seconds>", "first retry delay", parseSeconds)
  .option("--backoff-max <seconds>", "longest retry delay", parseSeconds)
  .option("--backoff-multiplier <x>", "growth per retry", Number)
  .option("--backoff-jitter <fraction>", "random spread of each delay, 0..1", Number)
  .option("--acked-retention <seconds>", "keep acked deliveries this long", parseSeconds)
  .action(
    withClient(async (c, name: string, options: PolicyOptions & { deadLetter?: boolean }) => {
      const sub = await c.updateSubscription(name, {
        ...policyOf(options),
        deadLettering: options.deadLetter,
      });
      console.log(`updated subscription ${sub.name}`);
      console.log(describeSubscription(sub));
    }),
  );
subscriptions
  .command("get <name>")
  .description("show a subscription and its policy")
  .action(
    withClient(async (c, name: string) => {
      const sub = await c.getSubscription(name);
      console.log(`${sub.name} on topic ${sub.topic}`);
      console.log(describeSubscription(sub));
    }),
  );
subscriptions
  .command("stats <name>")
  .description("backlog, cursor lag, in flight, oldest unacked age, dead letters and parked keys, read fresh")
  .action(
    withClient(async (c, name: string) => {
      const s = await c.subscriptionStats(name);
      console.log(
        `backlog ${s.backlog}\tcursor lag ${s.cursorLag} (${s.cursorLagAge?.seconds ?? 0}s, at position ${s.cursorPosition})\tin flight ${s.inFlight}\toldest unacked ${s.oldestUnackedAge?.seconds ?? 0}s\tdead letters ${s.deadLetters}\tparked keys ${s.parkedKeys}`,
      );
    }),
  );
subscriptions
  .command("seek <name>")
  .description(
    "move a subscription to a time or a position: events before it count as acked, events after it as pending (needs manage)",
  )
  .option("--time <time>", "the first event published at or after this time (RFC 3339)", parseTime)
  .option("--position <position>", "the event at this position and those after it", parseCount)
  .option("--earliest", "the oldest event the topic retains")
  .option("--now", "only events published from now on")
  .action(
    withClient(
      async (
        c,
        name: string,
        options: { time?: Date; position?: number; earliest?: boolean; now?: boolean },
      ) => {
        const targets: SeekTarget[] = [
          ...(options.time ? [options.time] : []),
          ...(options.position ? [{ position: options.position }] : []),
          ...(options.earliest ? (["earliest"] as const) : []),
          ...(options.now ? (["now"] as const) : []),
        ];
        const [to] = targets;
        if (targets.length !== 1 || to === undefined)
          throw new Error("give exactly one of --time, --position, --earliest or --now");
        const result = await c.seekSubscription(name, to);
        console.log(
          `seeked ${name}: delivering from position ${result.position}; ${result.droppedDeliveries} pending or leased deliveries dropped`,
        );
      },
    ),
  );
subscriptions
  .command("list")
  .description("list subscriptions")
  .option("-t, --topic <topic>", "only this topic's")
  .action(
    withClient(async (c, options: { topic?: string }) => {
      let token = "";
      do {
        const page = await c.listSubscriptions(options.topic ?? "", 1000, token);
        for (const s of page.subscriptions) {
          console.log(`${s.name}\ttopic ${s.topic}\tack deadline ${s.ackDeadline?.seconds}s`);
        }
        if (!token && page.subscriptions.length === 0) {
          console.log(options.topic ? `no subscriptions on topic ${options.topic}` : "no subscriptions");
        }
        token = page.nextPageToken;
      } while (token);
    }),
  );
subscriptions
  .command("delete <name>")
  .description("delete a subscription and its undelivered events")
  .action(
    withClient(async (c, name: string) => {
      await c.deleteSubscription(name);
      console.log(`deleted subscription ${name}`);
    }),
  );

const deadLetters = program
  .command("dead-letters")
  .alias("dlq")
  .description("inspect, redrive and purge dead letters");
const addFilterOptions = (command: Command) =>
  command
    .option("--reason <reason>", "max_attempts or rejected", parseReason)
    .option("--type <type>", "only events of this type")
    .option("--after <time>", "dead-lettered at or after this time (RFC 3339)", parseTime)
    .option("--before <time>", "dead-lettered before this time (RFC 3339)", parseTime);
addFilterOptions(
  deadLetters
    .command("list <subscription>")
    .description("print a subscription's dead letters as JSON lines, oldest first")
    .option("-n, --limit <count>", "at most this many", parseCount),
).action(
  withClient(async (c, subscription: string, options: DeadLetterOptions & { limit?: number }) => {
    let token = "";
    let printed = 0;
    const codec = await schemaCodec(c, (await c.getSubscription(subscription)).topic);
    do {
      const page = await c.listDeadLetters({ subscription, ...filterOf(options) }, 1000, token);
      for (const d of page.deadLetters) {
        if (options.limit !== undefined && printed >= options.limit) return;
        console.log(
          JSON.stringify({
            id: d.id,
            reason: DeadLetterReason[d.reason].replace("DEAD_LETTER_REASON_", "").toLowerCase(),
            attempts: d.attempts,
            lastError: d.lastError,
            firstFailure: d.firstFailureTime?.toISOString(),
            deadLettered: d.deadLetterTime?.toISOString(),
            event: d.event ? eventToJson(d.event, undefined, codec) : undefined,
          }),
        );
        printed++;
      }
      token = page.nextPageToken;
    } while (token);
    // On stderr: stdout stays JSON lines for scripts.
    if (printed === 0) console.error(`no dead letters in ${subscription}`);
  }),
);
addFilterOptions(
  deadLetters
    .command("redrive <subscription> [ids...]")
    .description(
      "deliver dead letters again with attempts reset: the ids given, or all that match the filter options",
    )
    .option("--all", "every dead letter of the subscription that matches the filter options"),
).action(
  withClient(
    async (c, subscription: string, ids: string[], options: DeadLetterOptions & { all?: boolean }) => {
      requireSelection(ids, options);
      const count = await c.redriveDeadLetters(subscription, { ids, filter: filterOf(options) });
      console.log(`redrove ${count} dead letter(s)`);
    },
  ),
);
addFilterOptions(
  deadLetters
    .command("purge <subscription> [ids...]")
    .description("delete dead letters for good: the ids given, or all that match the filter options")
    .option("--all", "every dead letter of the subscription that matches the filter options"),
).action(
  withClient(
    async (c, subscription: string, ids: string[], options: DeadLetterOptions & { all?: boolean }) => {
      requireSelection(ids, options);
      const count = await c.purgeDeadLetters(subscription, { ids, filter: filterOf(options) });
      console.log(`purged ${count} dead letter(s)`);
    },
  ),
);

const keys = program
  .command("keys")
  .description("ordering keys parked behind a dead letter (ordered subscriptions)");
keys
  .command("list <subscription>")
  .description("list parked keys, the dead letter holding each and how many events wait behind it")
  .action(
    withClient(async (c, subscription: string) => {
      const parked = await c.listParkedKeys(subscription);
      for (const k of parked) {
        console.log(`${k.orderingKey}\tdead letter ${k.deadLetterId || "(purged)"}\twaiting ${k.waiting}`);
      }
      if (parked.length === 0) console.log(`no parked keys in ${subscription}`);
    }),
  );
keys
  .command("release <subscription> <keys...>")
  .description("let the events behind these keys flow again (their dead letters stay listed)")
  .action(
    withClient(async (c, subscription: string, orderingKeys: string[]) => {
      console.log(`released ${await c.releaseParkedKeys(subscription, orderingKeys)} key(s)`);
    }),
  );

program
  .command("publish <topic> [event]")
  .description(
    'publish one event given as JSON (or one per line on stdin), e.g. \'{"type":"shop.OrderPlaced","data":{"id":1}}\'',
  )
  .option("-s, --source <source>", "source for events that name none", "pgmesh-cli")
  .action(
    withClient(async (c, topic: string, event: string | undefined, options: { source: string }) => {
      const lines =
        event === undefined
          ? readFileSync(0, "utf8")
              .split("\n")
              .filter((l) => l.trim())
          : [event];
      if (lines.length === 0) throw new Error("no event given: pass it as an argument or on stdin");
      const codec = await schemaCodec(c, topic);
      // With a schema, JSON data is encoded as the event's Protobuf type.
      const encode = codec
        ? (typeName: string, data: unknown) => encodeWithSchema(codec, typeName, data)
        : undefined;
      const events = lines.map((line) => eventFromJson(line, options, encode));
      const results = await c.publish(topic, events);
      for (const r of results)
        console.log(r.duplicate ? `duplicate ${r.id} (already published)` : `published ${r.id}`);
    }),
  );

program
  .command("tail <subscription>")
  .description("print each event of a subscription as a JSON line, and ack it")
  .option("-n, --max <count>", "exit after this many events", parseCount)
  .option("--no-ack", "print without acking (events are redelivered later)")
  .action(
    withClient(async (c, subscription: string, options: { max?: number; ack: boolean }) => {
      const sub = await c.getSubscription(subscription);
      await tail(c, subscription, options.max, options.ack, await schemaCodec(c, sub.topic));
    }),
  );

/** Stream errors reconnecting cannot fix (as the SDK's subscriber has them): the subscription is wrong. */
const FATAL_STREAM_ERRORS = new Set([
  status.NOT_FOUND,
  status.INVALID_ARGUMENT,
  status.FAILED_PRECONDITION,
  status.PERMISSION_DENIED,
  status.UNAUTHENTICATED,
]);

/**
 * Prints and (unless told not to) acks each event until `max` or Ctrl-C. A stream that breaks (the
 * broker restarted, the connection dropped) is reopened with jittered backoff, as the SDK's
 * subscriber does; what it held unacked comes again.
 */
async function tail(
  c: PgmeshClient,
  subscription: string,
  max: number | undefined,
  ack: boolean,
  codec: SchemaCodec | undefined,
): Promise<void> {
  const progress = { printed: 0, stopping: false, stop: () => {} };
  const onSigint = () => {
    progress.stopping = true;
    progress.stop();
  };
  process.once("SIGINT", onSigint);
  let delayMs = 100;
  try {
    for (let first = true; ; first = false) {
      const outcome = await tailStream(c, subscription, max, ack, codec, progress, !first);
      if (progress.stopping || (max !== undefined && progress.printed >= max)) return;
      const error = outcome.error;
      if (error && FATAL_STREAM_ERRORS.has(error.code)) throw error;
      if (outcome.opened) delayMs = 100;
      const why = error ? `${status[error.code] ?? error.code}: ${error.details || error.message}` : "ended";
      console.error(`the stream to the broker broke (${why}); reconnecting`);
      await new Promise((resolve) => setTimeout(resolve, Math.random() * delayMs));
      delayMs = Math.min(1000, delayMs * 2);
      if (progress.stopping) return;
    }
  } finally {
    process.off("SIGINT", onSigint);
  }
}

/** One stream: resolves when it ends, with the error that ended it unless this side ended it. */
function tailStream(
  c: PgmeshClient,
  subscription: string,
  max: number | undefined,
  ack: boolean,
  codec: SchemaCodec | undefined,
  progress: { printed: number; stopping: boolean; stop: () => void },
  reconnect: boolean,
): Promise<{ opened: boolean; error?: ServiceError }> {
  return new Promise((resolve) => {
    const metadata = c.metadata();
    // A reconnect waits for the broker to be back rather than failing at once while it restarts.
    if (reconnect) metadata.setOptions({ waitForReady: true });
    const call = c.subscriber.subscribe(metadata);
    let opened = false;
    let ending = false;
    progress.stop = () => {
      ending = true;
      call.end();
    };
    call.on("data", (message: SubscribeResponse) => {
      const response = message.response;
      if (response?.$case === "opened") opened = true;
      if (response?.$case !== "deliveries") return;
      const ackIds: string[] = [];
      for (const delivery of response.value.deliveries) {
        if (max !== undefined && progress.printed >= max) break;
        if (delivery.event)
          console.log(JSON.stringify(eventToJson(delivery.event, delivery.deliveryAttempt, codec)));
        ackIds.push(delivery.ackId);
        progress.printed++;
      }
      if (ack && ackIds.length > 0) call.write({ request: { $case: "ack", value: { ackIds } } });
      if (max !== undefined && progress.printed >= max) progress.stop();
    });
    call.on("status", (s) =>
      resolve(s.code === status.OK || ending ? { opened } : { opened, error: s as ServiceError }),
    );
    call.on("error", (error: ServiceError) =>
      resolve(error.code === status.CANCELLED || ending ? { opened } : { opened, error }),
    );
    const window = max === undefined ? 100 : Math.min(max, 100);
    call.write({
      request: {
        $case: "open",
        value: {
          subscription,
          consumer: "pgmesh-cli",
          maxOutstandingMessages: window,
          maxOutstandingBytes: 0,
        },
      },
    });
  });
}

addAccessCommands(program, withClient);

// Runs a command with a client, and turns failures into one readable line and exit code 1.
function withClient<A extends unknown[]>(run: (c: PgmeshClient, ...args: A) => Promise<void>) {
  return async (...args: A) => {
    const c = client();
    try {
      await run(c, ...args);
    } catch (error) {
      const e = error as Partial<ServiceError>;
      const code = e.code === undefined ? "" : ` (${status[e.code]})`;
      if (e.code === status.UNAVAILABLE) {
        console.error(
          `error: no broker answers at ${address()}${code}. Start one with \`npx pgmesh start\`, ` +
            "or point -a / PGMESH_ADDRESS at a running broker.",
        );
      } else {
        console.error(`error: ${e.details || e.message || String(error)}${code}`);
      }
      process.exitCode = 1;
    } finally {
      c.close();
    }
  };
}

interface PolicyOptions {
  ackDeadline?: number;
  maxAttempts?: number;
  deadLetter?: boolean;
  backoffInitial?: number;
  backoffMax?: number;
  backoffMultiplier?: number;
  backoffJitter?: number;
  ackedRetention?: number;
}

function policyOf(o: PolicyOptions): SubscriptionPolicy {
  const retry = {
    initialBackoffSeconds: o.backoffInitial,
    maxBackoffSeconds: o.backoffMax,
    multiplier: o.backoffMultiplier,
    jitter: o.backoffJitter,
  };
  return {
    ackDeadlineSeconds: o.ackDeadline,
    maxDeliveryAttempts: o.maxAttempts,
    deadLettering: o.deadLetter,
    ackedRetentionSeconds: o.ackedRetention,
    retryPolicy: Object.values(retry).some((v) => v !== undefined) ? retry : undefined,
  };
}

function describeSubscription(sub: Subscription): string {
  const r = sub.retryPolicy;
  return [
    `  ack deadline ${sub.ackDeadline?.seconds}s, ${sub.deadLettering ? `dead letter after ${sub.maxDeliveryAttempts} attempts` : "retry for ever (no dead letters)"}`,
    `  backoff ${r?.initialBackoff?.seconds}s x${r?.multiplier} up to ${r?.maxBackoff?.seconds}s, jitter ${r?.jitter}`,
    `  ${sub.ordering ? "ordered by ordering key" : "unordered"}${sub.filter ? `, filter ${sub.filter}` : ""}, acked retention ${sub.ackedRetention?.seconds ?? 0}s`,
  ].join("\n");
}

interface DeadLetterOptions {
  reason?: DeadLetterReason;
  type?: string;
  after?: Date;
  before?: Date;
}

function filterOf(o: DeadLetterOptions) {
  return { reason: o.reason, eventType: o.type, after: o.after, before: o.before };
}

function requireSelection(ids: string[], options: DeadLetterOptions & { all?: boolean }): void {
  const filtered = options.reason !== undefined || options.type || options.after || options.before;
  if (ids.length === 0 && !options.all && !filtered) {
    throw new Error(
      "name dead letter ids, or filter options, or --all for every dead letter of the subscription",
    );
  }
}

function parseReason(raw: string): DeadLetterReason {
  if (raw === "max_attempts") return DeadLetterReason.DEAD_LETTER_REASON_MAX_ATTEMPTS;
  if (raw === "rejected") return DeadLetterReason.DEAD_LETTER_REASON_REJECTED;
  throw new InvalidArgumentError(`reason must be max_attempts or rejected, got ${raw}`);
}

function parseTime(raw: string): Date {
  const time = new Date(raw);
  if (Number.isNaN(time.getTime())) throw new InvalidArgumentError(`${raw} is not an RFC 3339 time`);
  return time;
}

function parseStart(raw: string): SeekTarget {
  if (raw === "now" || raw === "earliest") return raw;
  if (/^[1-9][0-9]*$/.test(raw)) return { position: Number(raw) };
  const time = new Date(raw);
  if (Number.isNaN(time.getTime()))
    throw new InvalidArgumentError(`${raw} is not now, earliest, an RFC 3339 time or a position`);
  return time;
}

function parseOnOff(raw: string): boolean {
  if (raw === "on") return true;
  if (raw === "off") return false;
  throw new InvalidArgumentError(`expected on or off, got ${raw}`);
}

function parseSeconds(raw: string): number {
  const value = Number(raw.replace(/s$/, ""));
  if (!Number.isInteger(value)) throw new InvalidArgumentError(`${raw} is not a whole number of seconds`);
  return value;
}

function parseCount(raw: string): number {
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1)
    throw new InvalidArgumentError(`${raw} is not a positive whole number`);
  return value;
}

await program.parseAsync(process.argv);
