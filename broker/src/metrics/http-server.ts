// The broker's HTTP side: /metrics for Prometheus, /healthz (live: the process serves) and /readyz
// (ready: serving and the database answers) for probes. With scrape authentication configured,
// /metrics answers 401 without it; the probes stay open (they tell nothing but up or down, and
// load balancers and orchestrators call them without credentials).
import { createServer, type Server } from "node:http";
import type { Registry } from "prom-client";
import type { ScrapeAuth } from "./scrape-auth.ts";

export class MetricsServer {
  private readonly server: Server;

  constructor(
    registry: Registry,
    probes: { live: () => boolean; ready: () => Promise<boolean> },
    /** Undefined: /metrics is open. */
    auth?: ScrapeAuth,
  ) {
    this.server = createServer((request, response) => {
      const path = (request.url ?? "/").split("?")[0];
      if (request.method === "GET" && path === "/metrics") {
        if (auth && !auth.allows(request.headers.authorization)) {
          response
            .writeHead(401, { "content-type": "text/plain", "www-authenticate": auth.challenge })
            .end("authentication required: set the scrape config's authorization or basic_auth\n");
          return;
        }
        registry.metrics().then(
          (body) => {
            response.writeHead(200, { "content-type": registry.contentType });
            response.end(body);
          },
          () => {
            response.writeHead(500).end("metrics collection failed\n");
          },
        );
        return;
      }
      if (request.method === "GET" && path === "/healthz") {
        const ok = probes.live();
        response.writeHead(ok ? 200 : 503, { "content-type": "text/plain" }).end(ok ? "ok\n" : "draining\n");
        return;
      }
      if (request.method === "GET" && path === "/readyz") {
        probes.ready().then((ok) => {
          response
            .writeHead(ok ? 200 : 503, { "content-type": "text/plain" })
            .end(ok ? "ready\n" : "not ready\n");
        });
        return;
      }
      response
        .writeHead(404, { "content-type": "text/plain" })
        .end("not found: try /metrics, /healthz or /readyz\n");
    });
  }

  /** Resolves to the bound host:port (port 0 picks a free one). */
  listen(address: string): Promise<string> {
    const colon = address.lastIndexOf(":");
    const host = address.slice(0, colon);
    const port = Number(address.slice(colon + 1));
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, host, () => {
        const bound = this.server.address();
        resolve(typeof bound === "object" && bound ? `${host}:${bound.port}` : address);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}
