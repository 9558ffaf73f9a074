// A connection that goes half-open under a subscriber: the proxy between it and a real broker stops
// forwarding without closing anything, so no error ever reaches the stream. The subscriber notices
// the broker's missing heartbeats, reopens the stream, and once the keepalive has dropped the dead
// connection, receives again on a new one.

import { Topic } from "@pgmesh/proto/pgmesh/v1/admin";
import { connect, defineEvent } from "@pgmesh/sdk";
import { expect, it } from "vitest";
import { useTestBroker } from "../../broker/test/support/broker.ts";
import { TcpProxy } from "../../broker/test/support/tcp-proxy.ts";
import { until } from "../../broker/test/support/until.ts";

const t = useTestBroker({ PGMESH_HEARTBEAT_MS: "200" });

it("notices a half-open connection by its missing heartbeats, reconnects and receives", async () => {
  await t.mesh.client.createTopic("halfopen");
  // A short ack deadline: whatever the broker sent into the dead connection comes back soon.
  await t.mesh.client.createSubscription("halfopen.sub", "halfopen", { ackDeadlineSeconds: 2 });
  const Created = defineEvent("halfopen", "pgmesh.v1.Topic", Topic);
  const [host, port] = t.mesh.address.split(":") as [string, string];
  const proxy = await TcpProxy.start({ host, port: Number(port) });
  // The keepalive is what drops the dead connection; shortened from 30 s + 10 s for the test.
  const client = connect(`127.0.0.1:${proxy.port}`, {
    channelOptions: { "grpc.keepalive_time_ms": 1000, "grpc.keepalive_timeout_ms": 1000 },
  });
  const received = new Set<string>();
  const errors: unknown[] = [];
  const sub = client.subscribe("halfopen.sub", Created, (event) => void received.add(event.data.name), {
    onError: (error) => errors.push(error),
  });
  try {
    await sub.ready;
    const publish = (name: string) =>
      t.mesh.client.publishEvent(Created, { name, createTime: undefined, retention: undefined });
    await publish("before");
    await until(() => received.has("before"), "the event before the stall");

    const stalledAt = Date.now();
    proxy.stall();
    await until(
      () => errors.some((e) => String(e).includes("no message from the broker")),
      "the missed heartbeats noticed",
      5000,
    );
    // Three intervals of 200 ms, checked once per interval.
    expect(Date.now() - stalledAt).toBeLessThan(2000);

    await publish("after");
    await until(() => received.has("after"), "the event published after the stall", 20_000);
    expect(sub.lifecycle).toBe("open");
  } finally {
    await sub.close(2000);
    client.close();
    await proxy.close();
  }
});
