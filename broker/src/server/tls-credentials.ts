// TLS for the gRPC port from certificate files that can be replaced while the broker runs: they
// are re-read on reload() (SIGHUP) and whenever their modification time or size changes. A set
// of files that does not load (a key that does not match its certificate, a half-written file)
// is logged and the previous certificates stay in use.
import { readFileSync, type Stats, statSync } from "node:fs";
import { createSecureContext, type SecureContextOptions } from "node:tls";
import { ServerCredentials } from "@grpc/grpc-js";
import type { TlsFiles } from "../config.ts";

export interface CertificateEvents {
  loaded(files: string[]): void;
  failed(error: unknown): void;
}

export class ReloadingServerCredentials extends ServerCredentials {
  private readonly timer: NodeJS.Timeout;
  private fingerprint: string;
  private readonly listeners: ((options: SecureContextOptions) => void)[] = [];
  /** The certificates as last loaded (the console's HTTPS server uses them too). */
  options: SecureContextOptions;
  readonly mutual: boolean;

  constructor(
    private readonly files: TlsFiles,
    private readonly events: CertificateEvents,
  ) {
    const mutual = files.clientCaFile !== undefined;
    // Throws when the files do not load: a broker that cannot serve TLS must not start.
    const initial = ReloadingServerCredentials.read(files);
    // Under mutual TLS a connection without a certificate signed by the client CA is refused in
    // the handshake (node's rejectUnauthorized defaults to true once requestCert is set).
    super({ requestCert: mutual, rejectUnauthorized: mutual }, initial);
    this.options = initial;
    this.mutual = mutual;
    this.fingerprint = this.stamp();
    this.timer = setInterval(() => this.reloadIfChanged(), files.reloadIntervalMs);
    this.timer.unref();
  }

  /** Re-reads the files now (SIGHUP). */
  reload(): void {
    try {
      const options = ReloadingServerCredentials.read(this.files);
      this.fingerprint = this.stamp();
      this.updateSecureContextOptions(options);
      this.options = options;
      for (const listener of this.listeners) listener(options);
      this.events.loaded(this.paths());
    } catch (error) {
      this.events.failed(error);
    }
  }

  /** Told about every successful reload. */
  onReload(listener: (options: SecureContextOptions) => void): void {
    this.listeners.push(listener);
  }

  close(): void {
    clearInterval(this.timer);
  }

  override _equals(other: ServerCredentials): boolean {
    return other === this;
  }

  private reloadIfChanged(): void {
    let stamp: string;
    try {
      stamp = this.stamp();
    } catch {
      return; // mid-rotation (a file briefly missing): try again next tick
    }
    if (stamp !== this.fingerprint) this.reload();
  }

  private paths(): string[] {
    return [this.files.certFile, this.files.keyFile, this.files.clientCaFile].filter(
      (f): f is string => f !== undefined,
    );
  }

  private stamp(): string {
    return this.paths()
      .map((file) => statSync(file))
      .map((s: Stats) => `${s.mtimeMs}:${s.size}:${s.ino}`)
      .join("|");
  }

  private static read(files: TlsFiles): SecureContextOptions {
    const options: SecureContextOptions = {
      cert: readFileSync(files.certFile),
      key: readFileSync(files.keyFile),
      ca: files.clientCaFile ? readFileSync(files.clientCaFile) : undefined,
    };
    // Fails here, with OpenSSL's reason, rather than on the next handshake.
    createSecureContext(options);
    return options;
  }
}
