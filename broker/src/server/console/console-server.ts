// The web console's listener: the single-page app's static files and, on the same origin, the
// Connect API it calls (connect-gateway.ts). HTTPS with the broker's certificates when it has TLS.
import { readdirSync, readFileSync, statSync } from "node:fs";
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { join, relative } from "node:path";
import type { SecureContextOptions, TLSSocket } from "node:tls";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { createContextValues } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { ClientCertificate } from "../auth/audit-credential.ts";
import { MAX_REQUEST_BYTES } from "../grpc-server.ts";
import { consoleRoutes, type GatewayDeps, PEER } from "./connect-gateway.ts";

/** Where `npm run build -w @pgmesh/broker` puts the app; the same from src/ and from dist/. */
export const CONSOLE_FILES = fileURLToPath(new URL("../../../console/dist/", import.meta.url));

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  svg: "image/svg+xml",
  png: "image/png",
  ico: "image/x-icon",
  json: "application/json",
};

// The app loads nothing from elsewhere (no CDN) and may not be framed.
const SECURITY_HEADERS = {
  "content-security-policy":
    "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
};

interface StaticFile {
  type: string;
  body: Buffer;
  gzipped: Buffer;
  immutable: boolean;
}

export interface ConsoleServerOptions extends GatewayDeps {
  /** HTTPS with these; plain HTTP when absent. */
  tls?: {
    options: SecureContextOptions;
    mutual: boolean;
    onReload(listener: (options: SecureContextOptions) => void): void;
  };
  /** With authentication off, only these Host names are served (a DNS-rebinding page must not reach it). */
  authRequired: boolean;
  files?: string;
}

export class ConsoleServer {
  private readonly server: Server;
  private readonly files: Map<string, StaticFile>;

  constructor(private readonly options: ConsoleServerOptions) {
    this.files = loadFiles(options.files ?? CONSOLE_FILES);
    const api = connectNodeAdapter({
      routes: consoleRoutes(options),
      readMaxBytes: MAX_REQUEST_BYTES,
      // The browser speaks Connect; gRPC-Web and gRPC are the gRPC listener's business.
      grpc: false,
      grpcWeb: false,
      contextValues: (req) =>
        createContextValues().set(PEER, {
          address: req.socket.remoteAddress,
          certificate: clientCertificate(req.socket as TLSSocket),
        }),
    });
    const handle = (req: IncomingMessage, res: ServerResponse) => {
      for (const [header, value] of Object.entries(SECURITY_HEADERS)) res.setHeader(header, value);
      if (!options.authRequired && !localHost(req.headers.host)) {
        res
          .writeHead(421, { "content-type": "text/plain" })
          .end("this console runs without authentication and answers only to localhost or an IP address\n");
        return;
      }
      if (req.url?.startsWith("/pgmesh.v1.")) {
        api(req, res);
        return;
      }
      this.serveFile(req, res);
    };
    if (options.tls) {
      const { tls } = options;
      const https = createHttpsServer(
        { ...tls.options, requestCert: tls.mutual, rejectUnauthorized: tls.mutual },
        handle,
      );
      tls.onReload((reloaded) => https.setSecureContext(reloaded));
      this.server = https;
    } else {
      this.server = createHttpServer(handle);
    }
    // Browsers keep connections open; a stop must not wait for them.
    this.server.keepAliveTimeout = 5_000;
  }

  /** Binds and serves; resolves to the bound host:port. */
  async listen(address: string): Promise<string> {
    const colon = address.lastIndexOf(":");
    const host = address.slice(0, colon);
    const port = await new Promise<number>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(Number(address.slice(colon + 1)), host.replace(/^\[(.*)\]$/, "$1"), () => {
        const bound = this.server.address();
        resolve(typeof bound === "object" && bound ? bound.port : 0);
      });
    });
    return `${host}:${port}`;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private serveFile(req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    const path = new URL(req.url ?? "/", "http://console").pathname;
    const file = this.files.get(path === "/" ? "/index.html" : path);
    if (!file) {
      const missing =
        this.files.size === 0 ? "the console is not built: run `npm run build`\n" : "not found\n";
      res.writeHead(404, { "content-type": "text/plain; charset=utf-8" }).end(missing);
      return;
    }
    const gzip = /\bgzip\b/.test(String(req.headers["accept-encoding"] ?? ""));
    res.writeHead(200, {
      "content-type": file.type,
      // Assets carry a content hash in their names; index.html must be asked for every time.
      "cache-control": file.immutable ? "public, max-age=31536000, immutable" : "no-cache",
      vary: "accept-encoding",
      ...(gzip ? { "content-encoding": "gzip" } : {}),
    });
    res.end(req.method === "HEAD" ? undefined : gzip ? file.gzipped : file.body);
  }
}

/** Every file of the built app, read and compressed once. */
function loadFiles(root: string): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  const walk = (dir: string) => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return; // not built
    }
    for (const name of names) {
      const full = join(dir, name);
      if (statSync(full).isDirectory()) {
        walk(full);
        continue;
      }
      const body = readFileSync(full);
      const path = `/${relative(root, full).split("\\").join("/")}`;
      files.set(path, {
        type: TYPES[name.slice(name.lastIndexOf(".") + 1)] ?? "application/octet-stream",
        body,
        gzipped: gzipSync(body, { level: 9 }),
        immutable: path.startsWith("/assets/"),
      });
    }
  };
  walk(root);
  return files;
}

/** The client certificate the handshake verified (under mutual TLS), as the audit log names it. */
function clientCertificate(socket: TLSSocket): ClientCertificate | undefined {
  if (typeof socket.getPeerCertificate !== "function" || !socket.authorized) return undefined;
  const certificate = socket.getPeerCertificate();
  if (!certificate?.fingerprint256) return undefined;
  const commonName = certificate.subject?.CN;
  return {
    commonName: typeof commonName === "string" && commonName ? commonName : undefined,
    fingerprint256: certificate.fingerprint256,
  };
}

/** A Host header naming this machine or an IP address, never a DNS name that could be rebound. */
function localHost(host: string | undefined): boolean {
  if (!host) return false;
  const name = host.replace(/:\d+$/, "").replace(/^\[(.*)\]$/, "$1");
  return name === "localhost" || /^[0-9.]+$/.test(name) || name.includes(":");
}
