// Test certificates made with Debian's openssl command: a CA, a server certificate for
// localhost/127.0.0.1, client certificates, and a second, unrelated CA for the "wrong" cases.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface Pem {
  cert: Buffer;
  key: Buffer;
  certFile: string;
  keyFile: string;
}

export class TestCertificates {
  readonly dir = mkdtempSync(join(tmpdir(), "pgmesh-certs-"));

  /** A self-signed CA. */
  ca(name: string): Pem {
    const certFile = join(this.dir, `${name}.crt`);
    const keyFile = join(this.dir, `${name}.key`);
    openssl([
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      keyFile,
      "-out",
      certFile,
      "-days",
      "2",
      "-subj",
      `/CN=${name}`,
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    return read(certFile, keyFile);
  }

  /** A leaf certificate signed by `ca`: a server one (for localhost) or a client one. */
  leaf(ca: Pem, name: string, usage: "server" | "client", file = name): Pem {
    const certFile = join(this.dir, `${file}.crt`);
    const keyFile = join(this.dir, `${file}.key`);
    const csr = join(this.dir, `${file}.csr`);
    const ext = join(this.dir, `${file}.ext`);
    writeFileSync(
      ext,
      usage === "server"
        ? "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
        : "extendedKeyUsage=clientAuth\n",
    );
    openssl([
      "req",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      keyFile,
      "-out",
      csr,
      "-subj",
      `/CN=${name}`,
    ]);
    openssl([
      "x509",
      "-req",
      "-in",
      csr,
      "-CA",
      ca.certFile,
      "-CAkey",
      ca.keyFile,
      "-CAcreateserial",
      "-out",
      certFile,
      "-days",
      "2",
      "-extfile",
      ext,
    ]);
    return read(certFile, keyFile);
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function openssl(args: string[]): void {
  execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
}

function read(certFile: string, keyFile: string): Pem {
  return { cert: readFileSync(certFile), key: readFileSync(keyFile), certFile, keyFile };
}
