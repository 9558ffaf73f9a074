// A TCP proxy between a broker and its Postgres, so a test can take the database away and give it
// back without touching the server other tests share: `refuse` drops every connection and refuses
// new ones (a stopped server: ECONNREFUSED), `blackhole` accepts and never answers (a partition),
// `stall` leaves the open connections open but forwards nothing more on them (half-open: a peer or
// middlebox gone without a word) while new connections pass.
import { connect, createServer, type Server, type Socket } from "node:net";

export type ProxyMode = "pass" | "refuse" | "blackhole";

export class TcpProxy {
  mode: ProxyMode = "pass";
  private readonly sockets = new Set<Socket>();
  private readonly pairs = new Set<{ client: Socket; upstream: Socket }>();

  private constructor(
    private server: Server,
    readonly port: number,
    private readonly target: { host: string; port: number },
  ) {}

  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address();
    if (!address || typeof address === "string") throw new Error("proxy did not bind");
    const proxy = new TcpProxy(server, address.port, target);
    server.on("connection", (client) => proxy.accept(client));
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
  async cut(mode: "refuse" | "blackhole"): Promise<void> {
    this.mode = mode;
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    if (mode === "refuse") await new Promise((resolve) => this.server.close(resolve));
  }

  /** Stops forwarding on every open connection without closing it; new connections still pass. */
  stall(): void {
    for (const { client, upstream } of this.pairs) {
      client.unpipe(upstream);
      upstream.unpipe(client);
      client.pause();
      upstream.pause();
    }
    this.pairs.clear();
  }

  /** Listens again on the same port when it had stopped. */
  async restore(): Promise<void> {
    const refused = this.mode === "refuse";
    this.mode = "pass";
    if (!refused) return;
    this.server = createServer((client) => this.accept(client));
    await new Promise<void>((resolve) => this.server.listen(this.port, "127.0.0.1", resolve));
  }

  async close(): Promise<void> {
    if (this.mode !== "refuse") await this.cut("refuse");
  }

  private accept(client: Socket): void {
    this.sockets.add(client);
    client.on("close", () => this.sockets.delete(client));
    client.on("error", () => {});
    if (this.mode === "blackhole") return;
    const upstream = connect(this.target.port, this.target.host);
    this.sockets.add(upstream);
    const pair = { client, upstream };
    this.pairs.add(pair);
    client.on("close", () => this.pairs.delete(pair));
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
