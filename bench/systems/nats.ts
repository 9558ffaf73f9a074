// NATS JetStream with durable storage: a file-storage stream (one replica) per channel, one durable
// pull consumer per subscription (explicit ack, max_ack_pending = the windows of its streams), read
// with consume() and acked per message. Publishes wait for each PubAck.
import { randomBytes } from "node:crypto";
import { AckPolicy, type ConsumerMessages, connect, type NatsConnection, StorageType } from "nats";
import { packageVersion } from "../package-version.ts";
import { decodeStamp, encodeStamp } from "../payload.ts";
import { type Channel, type Consumer, pollUntil, type System } from "./system.ts";

export const NATS_URL = process.env.BENCH_NATS_URL ?? "127.0.0.1:4222";
const RUN = randomBytes(3).toString("hex");

export function natsSystem(): System {
  let pubNc: NatsConnection | undefined;
  let subNc: NatsConnection | undefined;
  return {
    key: "nats",
    label: "NATS JetStream",
    async open() {
      pubNc = await connect({ servers: NATS_URL, name: "pgmesh-bench-pub" });
      subNc = await connect({ servers: NATS_URL, name: "pgmesh-bench-sub" });
      // Fails here, not mid-run, when JetStream is off.
      await (await pubNc.jetstreamManager()).getAccountInfo();
    },
    info: () => ({
      server: `nats-server ${pubNc?.info?.version ?? "?"}`,
      nats: packageVersion("nats"),
      use: "file storage, 1 replica; durable pull consumers, explicit ack per message",
    }),
    async channel(name, subscriptions) {
      const pnc = pubNc as NatsConnection;
      const jsm = await pnc.jetstreamManager();
      const js = pnc.jetstream();
      const stream = `PGMESH_BENCH_${RUN}_${name.replace(/\./g, "_")}`;
      const subject = `pgmesh_bench.${RUN}.${name}`;
      await jsm.streams.add({ name: stream, subjects: [subject], storage: StorageType.File });
      const durables = Array.from({ length: subscriptions }, (_, i) => `s${i}`);
      const windows = new Map<string, number>();
      for (const durable of durables) {
        await jsm.consumers.add(stream, {
          durable_name: durable,
          ack_policy: AckPolicy.Explicit,
          max_ack_pending: 1,
        });
      }
      const publish = async (data: Uint8Array) => {
        const ack = await js.publish(subject, data);
        if (ack.duplicate) throw new Error("NATS: publish reported a duplicate");
      };
      const channel: Channel = {
        async publishBatch(stamps) {
          await Promise.all(stamps.map((stamp) => publish(encodeStamp(stamp))));
        },
        publishOne: (stamp) => publish(encodeStamp(stamp)),
        async consume(subscription, window, receive): Promise<Consumer> {
          const durable = durables[subscription] as string;
          const total = (windows.get(durable) ?? 0) + window;
          windows.set(durable, total);
          await jsm.consumers.update(stream, durable, { max_ack_pending: total });
          const consumer = await (subNc as NatsConnection).jetstream().consumers.get(stream, durable);
          const messages: ConsumerMessages = await consumer.consume({ max_messages: window });
          const loop = (async () => {
            for await (const m of messages) {
              receive(decodeStamp(m.data));
              m.ack();
            }
          })();
          return {
            async stop() {
              await (subNc as NatsConnection).flush();
              messages.stop();
              await loop;
            },
          };
        },
        async drained(timeoutMs) {
          await (subNc as NatsConnection).flush();
          for (const durable of durables) {
            await pollUntil(
              () => jsm.consumers.info(stream, durable),
              (info) => info.num_pending === 0 && info.num_ack_pending === 0,
              timeoutMs,
              (info) => `${durable}: ${info.num_pending} pending, ${info.num_ack_pending} unacked`,
            );
          }
        },
        async delete() {
          await jsm.streams.delete(stream);
        },
      };
      return channel;
    },
    async close() {
      await pubNc?.drain();
      await subNc?.drain();
    },
  };
}
