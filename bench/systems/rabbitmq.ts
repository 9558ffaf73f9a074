// RabbitMQ as commonly run for durable work: classic durable queues, persistent messages, publisher
// confirms (each publish resolves on its own confirm), and consumers with a prefetch window and one
// manual basic.ack per message. A fan-out publishes to a durable fanout exchange with one queue per
// subscription. Publisher and consumers use connections of their own, as RabbitMQ recommends.
import { randomBytes } from "node:crypto";
import amqp from "amqplib";
import { packageVersion } from "../package-version.ts";
import { decodeStamp, encodeStamp, type Stamp } from "../payload.ts";
import { type Channel, type Consumer, pollUntil, type System } from "./system.ts";

export const AMQP_URL = process.env.BENCH_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";
const RUN = randomBytes(3).toString("hex");

export function rabbitmqSystem(): System {
  let pubConn: amqp.ChannelModel | undefined;
  let subConn: amqp.ChannelModel | undefined;
  let pub: amqp.ConfirmChannel | undefined;
  let server = "?";
  return {
    key: "rabbitmq",
    label: "RabbitMQ",
    async open() {
      // TCP_NODELAY, as grpc-js, pg and nats.js set by default (amqplib leaves Nagle on).
      pubConn = await amqp.connect(AMQP_URL, { noDelay: true });
      subConn = await amqp.connect(AMQP_URL, { noDelay: true });
      pub = await pubConn.createConfirmChannel();
      server = String(pubConn.connection.serverProperties.version ?? "?");
    },
    info: () => ({
      server: `RabbitMQ ${server}`,
      amqplib: packageVersion("amqplib"),
      use: "classic durable queues, persistent messages, publisher confirms, prefetch = window, one basic.ack per message",
    }),
    async channel(name, subscriptions) {
      const p = pub as amqp.ConfirmChannel;
      const base = `pgmesh_bench.${RUN}.${name}`;
      const queues = Array.from({ length: subscriptions }, (_, i) => `${base}.s${i}`);
      for (const queue of queues) await p.assertQueue(queue, { durable: true });
      const exchange = subscriptions > 1 ? base : "";
      if (subscriptions > 1) {
        await p.assertExchange(exchange, "fanout", { durable: true });
        for (const queue of queues) await p.bindQueue(queue, exchange, "");
      }
      const routingKey = subscriptions > 1 ? "" : (queues[0] as string);
      const send = (stamp: Stamp) =>
        new Promise<void>((resolve, reject) => {
          p.publish(exchange, routingKey, encodeStamp(stamp), { persistent: true }, (error) =>
            error ? reject(error) : resolve(),
          );
        });
      const consumers: { channel: amqp.Channel; queue: string }[] = [];
      const channel: Channel = {
        async publishBatch(stamps) {
          await Promise.all(stamps.map(send));
        },
        publishOne: send,
        async consume(subscription, window, receive): Promise<Consumer> {
          const queue = queues[subscription] as string;
          const ch = await (subConn as amqp.ChannelModel).createChannel();
          await ch.prefetch(window);
          const { consumerTag } = await ch.consume(
            queue,
            (msg) => {
              if (!msg) return;
              receive(decodeStamp(msg.content));
              ch.ack(msg);
            },
            { noAck: false },
          );
          const entry = { channel: ch, queue };
          consumers.push(entry);
          return {
            async stop() {
              await ch.cancel(consumerTag);
              await ch.close();
              consumers.splice(consumers.indexOf(entry), 1);
            },
          };
        },
        async drained(timeoutMs) {
          // A synchronous method on each consumer's channel comes back after the acks sent before it.
          for (const { channel: ch, queue } of consumers) await ch.checkQueue(queue);
          for (const queue of queues) {
            await pollUntil(
              async () => (await p.checkQueue(queue)).messageCount,
              (left) => left === 0,
              timeoutMs,
              (left) => `${queue}: ${left} messages ready`,
            );
          }
        },
        async delete() {
          for (const queue of queues) await p.deleteQueue(queue);
          if (exchange) await p.deleteExchange(exchange);
        },
      };
      return channel;
    },
    async close() {
      await pubConn?.close();
      await subConn?.close();
    },
  };
}
