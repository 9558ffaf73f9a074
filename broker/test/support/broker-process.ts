// A broker in a process of its own on an embedded Postgres, for the tests of what only a real
// process shows (signals, npm, restarts): started, and waited for until it serves.
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { freePort } from "./free-port.ts";
import { FROM_SOURCE } from "./from-source.ts";
import { until } from "./until.ts";

const root = fileURLToPath(new URL("../../../", import.meta.url));

export interface BrokerProcess {
  child: ChildProcess;
  address: string;
  output: () => string;
  exited: Promise<number | null>;
}

export interface BrokerProcessOptions {
  dataDir: string;
  postgresPort: number;
  /** What to run from the repository root; the broker's sources by default. */
  command?: string[];
  env?: Record<string, string>;
  /** Leader of a new process group, like a shell's foreground job. */
  detached?: boolean;
}

export async function startBrokerProcess(options: BrokerProcessOptions): Promise<BrokerProcess> {
  const grpcPort = await freePort();
  const [file, ...args] = options.command ?? [process.execPath, ...FROM_SOURCE, "broker/src/main.ts"];
  const child = spawn(file ?? "", args, {
    cwd: root,
    detached: options.detached ?? false,
    env: {
      ...process.env,
      DATABASE_URL: "",
      PGMESH_DATA_DIR: options.dataDir,
      PGMESH_EMBEDDED_POSTGRES_PORT: String(options.postgresPort),
      PGMESH_GRPC_ADDRESS: `127.0.0.1:${grpcPort}`,
      PGMESH_METRICS_ADDRESS: "127.0.0.1:0",
      ...options.env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (d) => (output += d));
  child.stderr?.on("data", (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  await until(
    () => output.includes("serving gRPC on") || child.exitCode !== null,
    "the broker to start",
    60_000,
  );
  if (!output.includes("serving gRPC on")) throw new Error(`the broker did not start:\n${output}`);
  return { child, address: `127.0.0.1:${grpcPort}`, output: () => output, exited };
}
