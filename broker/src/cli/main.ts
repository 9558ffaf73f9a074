// `pgmesh`: run the broker, manage topics and subscriptions, publish and tail events.
import { readFileSync } from "node:fs";
import type { ServiceError } from "@grpc/grpc-js";
import { status } from "@grpc/grpc-js";
import { PgmeshClient } from "@pgmesh/sdk";
import type { SubscribeResponse } from "@pgmesh/sdk/gen/pgmesh/v1/subscriber";
import { Command, Option } from "commander";
import { runBroker } from "../run.ts";
import { eventFromJson } from "./event-input.ts";
import { eventToJson } from "./format.ts";

const program = new Command("pgmesh")
  .description("pgmesh: a gRPC event mesh on PostgreSQL")
  .addOption(
    new Option("-a, --address <host:port>", "broker to talk to")
      .env("PGMESH_ADDRESS")
      .default("127.0.0.1:50051"),
  )
  .showHelpAfterError();

const client = () => new PgmeshClient(program.opts<{ address: string }>().address, { timeoutMs: 15_000 });

program
  .command("start")
  .description("run the broker in the foreground (embedded Postgres unless DATABASE_URL is set)")
  .allowUnknownOption()
  .helpOption(false)
  .argument("[flags...]", "--database-url, --grpc-address, --metrics-address, --data-dir, --log-level")
  .action(async (flags: string[]) => runBroker(flags));

const topics = program.command("topics").description("manage topics");
topics
  .command("create <name>")
  .description("create a topic")
  .action(
    withClient(async (c, name: string) => {
      const topic = await c.createTopic(name);
      console.log(`created topic ${topic.name}`);
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
        for (const t of page.topics) console.log(`${t.name}\tcreated ${t.createTime?.toISOString() ?? ""}`);
        token = page.nextPageToken;
      } while (token);
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
  .description("create a subscription; it receives the events published from now on")
  .requiredOption("-t, --topic <topic>", "the topic to subscribe to")
  .option("--ack-deadline <seconds>", "seconds a delivery stays leased before redelivery", parseSeconds)
  .action(
    withClient(async (c, name: string, options: { topic: string; ackDeadline?: number }) => {
      const sub = await c.createSubscription(name, options.topic, {
        ackDeadlineSeconds: options.ackDeadline,
      });
      console.log(
        `created subscription ${sub.name} on topic ${sub.topic} (ack deadline ${sub.ackDeadline?.seconds}s)`,
      );
    }),
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
      const results = await c.publish(
        topic,
        lines.map((line) => eventFromJson(line, options)),
      );
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
      await tail(c, subscription, options.max, options.ack);
    }),
  );

function tail(c: PgmeshClient, subscription: string, max: number | undefined, ack: boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const call = c.subscriber.subscribe();
    let printed = 0;
    const stop = () => {
      call.end();
    };
    process.once("SIGINT", stop);
    call.on("data", (message: SubscribeResponse) => {
      const response = message.response;
      if (response?.$case !== "deliveries") return;
      const ackIds: string[] = [];
      for (const delivery of response.value.deliveries) {
        if (max !== undefined && printed >= max) break;
        if (delivery.event)
          console.log(JSON.stringify(eventToJson(delivery.event, delivery.deliveryAttempt)));
        ackIds.push(delivery.ackId);
        printed++;
      }
      if (ack && ackIds.length > 0) call.write({ request: { $case: "ack", value: { ackIds } } });
      if (max !== undefined && printed >= max) stop();
    });
    call.on("status", (s) => (s.code === status.OK ? resolve() : reject(s)));
    call.on("error", (error) =>
      (error as ServiceError).code === status.CANCELLED ? resolve() : reject(error),
    );
    const window = max === undefined ? 100 : Math.min(max, 100);
    call.write({
      request: {
        $case: "open",
        value: { subscription, consumer: "pgmesh-cli", maxOutstandingMessages: window },
      },
    });
  });
}

// Runs a command with a client, and turns failures into one readable line and exit code 1.
function withClient<A extends unknown[]>(run: (c: PgmeshClient, ...args: A) => Promise<void>) {
  return async (...args: A) => {
    const c = client();
    try {
      await run(c, ...args);
    } catch (error) {
      const e = error as Partial<ServiceError>;
      const code = e.code === undefined ? "" : ` (${status[e.code]})`;
      console.error(`error: ${e.details || e.message || String(error)}${code}`);
      process.exitCode = 1;
    } finally {
      c.close();
    }
  };
}

function parseSeconds(raw: string): number {
  const value = Number(raw.replace(/s$/, ""));
  if (!Number.isInteger(value)) throw new Error(`${raw} is not a whole number of seconds`);
  return value;
}

function parseCount(raw: string): number {
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${raw} is not a positive whole number`);
  return value;
}

await program.parseAsync(process.argv);
