// A TCP proxy between a broker and its Postgres, so a test can take the database away and give it
// back without touching the server other tests share: `refuse` drops every connection at once (a
// stopped or restarting server), `blackhole` accepts and never answers (a partition).
import { connect, createServer, type Server, type Socket } from "node:net";

export type ProxyMode = "pass" | "refuse" | "blackhole";

export class TcpProxy {
  mode: ProxyMode = "pass";
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address();
    if (!address || typeof address === "string") throw new Error("proxy did not bind");
    const proxy = new TcpProxy(server, address.port);
    server.on("connection", (client) => proxy.accept(client, target));
    return proxy;
  }

  /** The URL of `url`'s database through this proxy. */
  urlFor(url: string): string {
    const through = new URL(url);
    through.hostname = "127.0.0.1";
    through.port = String(this.port);
    return through.toString();
  }

  /** Cuts every open connection and treats new ones as `mode` says until restored. */
  cut(mode: "refuse" | "blackhole"): void {
    this.mode = mode;
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }

  restore(): void {
    this.mode = "pass";
  }

  async close(): Promise<void> {
    this.cut("refuse");
    await new Promise((resolve) => this.server.close(resolve));
  }

  private accept(client: Socket, target: { host: string; port: number }): void {
    this.sockets.add(client);
    client.on("close", () => this.sockets.delete(client));
    client.on("error", () => {});
    if (this.mode === "refuse") {
      client.destroy();
      return;
    }
    if (this.mode === "blackhole") return;
    const upstream = connect(target.port, target.host);
    this.sockets.add(upstream);
    upstream.on("close", () => {
      this.sockets.delete(upstream);
      client.destroy();
    });
    upstream.on("error", () => client.destroy());
    client.on("close", () => upstream.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  }
}
