// What the SDK's connections tell the broker it may send before they acknowledge it (HTTP/2 flow
// control). grpc-js leaves both windows at HTTP/2's 65,535 bytes: a Deliveries message of 1,000
// events (about 350 kB) then crossed in six WINDOW_UPDATE round trips, and the streams sharing a
// connection shared 64 kB between them (bench (c): the ten streams' windows sat full of deliveries
// still on the way). Observed here from the server's side of a real HTTP/2 connection.
import { once } from "node:events";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { connect } from "@pgmesh/sdk";
import { afterEach, expect, it } from "vitest";
import { until } from "../../broker/test/support/until.ts";

const EIGHT_MIB = 8 * 1024 * 1024;
let server: http2.Http2Server | undefined;

afterEach(async () => {
  if (server?.listening) {
    const closed = once(server, "close");
    server.close();
    await closed;
  }
});

it("lets the broker send 8 MiB on a connection and on each stream before a window update", async () => {
  const sessions: http2.ServerHttp2Session[] = [];
  server = http2.createServer();
  server.on("session", (session) => sessions.push(session));
  // Answer every call UNAVAILABLE: only the connection's settings matter here.
  server.on("stream", (stream) => {
    stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
    stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "14", "grpc-message": "test" }));
    stream.end();
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  const client = connect(`127.0.0.1:${port}`);
  try {
    await client.listTopics().catch(() => {});
    await until(
      () => (sessions[0]?.state.remoteWindowSize ?? 0) >= EIGHT_MIB,
      "the connection's window update",
    );
    expect(sessions[0]?.remoteSettings.initialWindowSize).toBe(EIGHT_MIB);
  } finally {
    client.close();
    for (const session of sessions) session.destroy();
  }
});
