// pgmesh under test: a broker in its own process on a fresh database, driven either through the SDK
// (PgmeshClient.publish and subscribeRaw, which acks each event as its handler returns) or through
// the raw generated gRPC clients (one Publish call per batch; a Subscribe stream that acks all the
// events of a Deliveries message in one Ack message).
import { credentials, Metadata } from "@grpc/grpc-js";
import { Event } from "@pgmesh/proto/pgmesh/v1/event";
import { PublisherServiceClient } from "@pgmesh/proto/pgmesh/v1/publisher";
import {
  AckStatus,
  Open,
  type SubscribeResponse,
  SubscriberServiceClient,
} from "@pgmesh/proto/pgmesh/v1/subscriber";
import { PgmeshClient } from "@pgmesh/sdk";
import { fetchTallyFromMetrics } from "../fetch-tally.ts";
import { packageVersion } from "../package-version.ts";
import { decodeStamp, encodeStamp, type Stamp } from "../payload.ts";
import { createDatabase } from "../postgres-admin.ts";
import { BrokerChild } from "./broker-child.ts";
import { type Channel, type Consumer, pollUntil, type System } from "./system.ts";

const TYPE_URL = "type.googleapis.com/bench.Payload";

export const event = (stamp: Stamp): Event =>
  Event.fromPartial({
    id: `${stamp.round}-${stamp.index}`,
    source: "bench",
    type: "bench.Payload",
    data: { typeUrl: TYPE_URL, value: encodeStamp(stamp) },
  });

/**
 * `before`: the directory of another pgmesh checkout whose broker to run instead of this one's (the
 * system "pgmesh-before", driven through this checkout's SDK).
 */
export function pgmeshSystem(via: "sdk" | "grpc", before?: string): System {
  let db: { name: string; url: string } | undefined;
  let broker: BrokerChild | undefined;
  const moreBrokers: BrokerChild[] = [];
  let client: PgmeshClient | undefined;
  let publisher: PublisherServiceClient | undefined;
  let subscriber: SubscriberServiceClient | undefined;

  const rawPublish = (topic: string, events: Event[]) =>
    new Promise<void>((resolve, reject) => {
      (publisher as PublisherServiceClient).publish({ topic, events }, (error, response) => {
        if (error) reject(error);
        else if (response.results.some((r) => r.duplicate))
          reject(new Error("pgmesh: publish reported a duplicate"));
        else resolve();
      });
    });
  const sdkPublish = async (topic: string, events: Event[]) => {
    const results = await (client as PgmeshClient).publish(topic, events);
    if (results.some((r) => r.duplicate)) throw new Error("pgmesh: publish reported a duplicate");
  };
  const publish = via === "sdk" ? sdkPublish : rawPublish;

  return {
    key: before ? "pgmesh-before" : via === "sdk" ? "pgmesh" : "pgmesh-grpc",
    label: before ? "pgmesh before (SDK)" : via === "sdk" ? "pgmesh (SDK)" : "pgmesh (raw gRPC)",
    async open() {
      db = await createDatabase(before ? "pgmeshbefore" : via === "sdk" ? "pgmesh" : "pgmeshgrpc");
      broker = await BrokerChild.start(db.url, before);
      client = new PgmeshClient(broker.grpcAddress, { source: "bench" });
      publisher = new PublisherServiceClient(broker.grpcAddress, credentials.createInsecure());
      subscriber = new SubscriberServiceClient(broker.grpcAddress, credentials.createInsecure());
    },
    info: () => ({
      broker: `its own process (${before ? `${before}/` : ""}bench/broker-process.ts), gRPC over 127.0.0.1`,
      pgBoss: packageVersion("pg-boss"),
      client:
        via === "sdk"
          ? "SDK: publish(); subscribeRaw() acks per event, sent once per event-loop turn"
          : "generated grpc-js clients: one Ack message per Deliveries message",
    }),
    database: () => ({ ...(db as { name: string; url: string }), schemas: ["pgmesh", "pgboss"] }),
    rssBytes: () => broker?.rssBytes(),
    async brokerAddresses(count) {
      const url = (db as { url: string }).url;
      while (moreBrokers.length < count - 1) moreBrokers.push(await BrokerChild.start(url, before));
      return [broker as BrokerChild, ...moreBrokers.slice(0, count - 1)].map((b) => b.grpcAddress);
    },
    async channel(name, subscriptions) {
      const c = client as PgmeshClient;
      // Each channel's consumers are a service of their own, on a connection of their own, as
      // deployed: one connection for all of (d)'s 1,000 streams plus the publishers would be past
      // the broker's streams-per-connection cap (PGMESH_GRPC_MAX_STREAMS_PER_CONNECTION, 1,000),
      // and its calls would wait for a free stream until their deadline.
      const ownConnection = { "grpc.use_local_subchannel_pool": 1 };
      const consumerClient = new PgmeshClient((broker as BrokerChild).grpcAddress, {
        source: "bench",
        channelOptions: ownConnection,
      });
      const consumerStub = new SubscriberServiceClient(
        (broker as BrokerChild).grpcAddress,
        credentials.createInsecure(),
        ownConnection,
      );
      const subs = Array.from({ length: subscriptions }, (_, s) => `${name}.s${s}`);
      await c.createTopic(name);
      for (const sub of subs) {
        await c.createSubscription(sub, name, {
          retryPolicy: { initialBackoffSeconds: 0, maxBackoffSeconds: 0, jitter: 0 },
        });
      }
      const errors: unknown[] = [];
      const channel: Channel = {
        publishBatch: (stamps) => publish(name, stamps.map(event)),
        publishOne: (stamp) => publish(name, [event(stamp)]),
        async consume(subscription, window, receive) {
          const sub = subs[subscription] as string;
          return via === "sdk"
            ? sdkConsumer(consumerClient, sub, window, receive, errors)
            : grpcConsumer(consumerStub, sub, window, receive, errors);
        },
        async drained(timeoutMs) {
          for (const sub of subs) {
            await pollUntil(
              async () => {
                if (errors.length > 0) throw new Error(`pgmesh: consumer error: ${String(errors[0])}`);
                return c.subscriptionStats(sub);
              },
              (stats) => Number(stats.backlog) === 0 && Number(stats.inFlight) === 0,
              timeoutMs,
              (stats) => `${sub}: backlog ${stats.backlog}, in flight ${stats.inFlight}`,
            );
          }
          if (errors.length > 0) throw new Error(`pgmesh: consumer error: ${String(errors[0])}`);
        },
        async fetches() {
          const response = await fetch(`http://${(broker as BrokerChild).metricsAddress}/metrics`);
          return fetchTallyFromMetrics(await response.text(), subs);
        },
        async delete() {
          consumerClient.close();
          consumerStub.close();
          for (const sub of subs) await c.deleteSubscription(sub);
          await c.deleteTopic(name);
        },
      };
      return channel;
    },
    async close() {
      client?.close();
      publisher?.close();
      subscriber?.close();
      await Promise.all([broker, ...moreBrokers.splice(0)].map((b) => b?.stop()));
      broker = undefined;
    },
  };
}

export async function sdkConsumer(
  client: PgmeshClient,
  subscription: string,
  window: number,
  receive: (stamp: Stamp) => void,
  errors: unknown[],
): Promise<Consumer> {
  const sub = client.subscribeRaw(subscription, (e) => receive(decodeStamp(e.data)), {
    concurrency: window,
    onError: (error) => errors.push(error),
  });
  sub.done.catch((error: unknown) => errors.push(error));
  await sub.ready;
  return { stop: () => sub.close() };
}

/** A Subscribe stream on the generated client: each Deliveries message is acked with one Ack message. */
async function grpcConsumer(
  client: SubscriberServiceClient,
  subscription: string,
  window: number,
  receive: (stamp: Stamp) => void,
  errors: unknown[],
): Promise<Consumer> {
  const call = client.subscribe(new Metadata());
  const ended = new Promise<void>((resolve) => {
    call.on("end", resolve);
    call.on("error", (error) => {
      if (!stopping) errors.push(error);
      resolve();
    });
  });
  let stopping = false;
  const opened = new Promise<void>((resolve) => {
    call.on("data", (message: SubscribeResponse) => {
      const response = message.response;
      if (response?.$case === "opened") resolve();
      else if (response?.$case === "deliveries") {
        const ackIds: string[] = [];
        for (const delivery of response.value.deliveries) {
          receive(decodeStamp(delivery.event?.data?.value ?? new Uint8Array()));
          ackIds.push(delivery.ackId);
        }
        call.write({ request: { $case: "ack", value: { ackIds } } });
      } else if (response?.$case === "ackResults") {
        const refused = response.value.results.find((r) => r.status !== AckStatus.ACK_STATUS_ACKED);
        if (refused) errors.push(new Error(`ack ${refused.ackId} came back ${AckStatus[refused.status]}`));
      }
    });
  });
  call.write({
    request: {
      $case: "open",
      // fromPartial: fields the protocol gains later keep their defaults.
      value: Open.fromPartial({ subscription, consumer: "bench-grpc", maxOutstandingMessages: window }),
    },
  });
  await Promise.race([opened, ended.then(() => Promise.reject(errors[0] ?? new Error("stream ended")))]);
  return {
    async stop() {
      stopping = true;
      call.end();
      await Promise.race([ended, new Promise((resolve) => setTimeout(resolve, 5000))]);
      call.cancel();
    },
  };
}
