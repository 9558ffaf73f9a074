// Connections are a resource too: one that never sends a request is closed after the idle timeout,
// and one connection cannot open more streams than the cap.
import { connect, type Socket } from "node:net";
import { PgmeshClient } from "@pgmesh/sdk";
import { describe, expect, it } from "vitest";
import { useTestBroker } from "../support/broker.ts";
import { StreamProbe, sleep } from "../support/stream-probe.ts";

const t = useTestBroker({ PGMESH_GRPC_IDLE_TIMEOUT_MS: "1000", PGMESH_GRPC_MAX_STREAMS_PER_CONNECTION: "2" });

describe("connection limits", () => {
  it("closes connections that never send a request", async () => {
    const [host, port] = [
      t.mesh.address.slice(0, t.mesh.address.lastIndexOf(":")),
      Number(t.mesh.address.split(":").at(-1)),
    ];
    const sockets: Socket[] = [];
    const closed = await Promise.all(
      Array.from({ length: 50 }, async () => {
        const socket = connect(port, host);
        sockets.push(socket);
        socket.on("error", () => {});
        const started = Date.now();
        await new Promise((resolve) => socket.on("close", resolve));
        return Date.now() - started;
      }).map((p) => Promise.race([p, sleep(5_000).then(() => Number.POSITIVE_INFINITY)])),
    );
    for (const socket of sockets) socket.destroy();
    expect(Math.max(...closed)).toBeLessThan(4_000);
  });

  it("caps the streams one connection may open", async () => {
    await t.mesh.client.createTopic("cap");
    await t.mesh.client.createSubscription("cap.sub", "cap");
    const client = new PgmeshClient(t.mesh.address);
    try {
      const first = await StreamProbe.open(client, "cap.sub");
      await StreamProbe.open(client, "cap.sub");
      const third = StreamProbe.raw(client);
      third.send({
        request: {
          $case: "open",
          value: { subscription: "cap.sub", consumer: "", maxOutstandingMessages: 0, maxOutstandingBytes: 0 },
        },
      });
      await sleep(1_000);
      expect(third.opened).toBeUndefined();
      await first.close();
      await third.until(() => third.opened !== undefined, "the third stream to open once one closed");
    } finally {
      client.close();
    }
  });
});
