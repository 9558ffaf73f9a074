// A broker in a process of its own, for the tests of what only a real process shows (signals, npm,
// restarts, kill -9): started, and waited for until it serves. It binds port 0 and the address is
// read from its log: a port picked free beforehand can be taken by the time the broker binds it
// (CI saw EADDRINUSE when two brokers started at once).
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
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
  /** The embedded Postgres's data directory and port; leave out with a DATABASE_URL in `env`. */
  dataDir?: string;
  postgresPort?: number;
  /** What to run from the repository root; the broker's sources by default. */
  command?: string[];
  env?: Record<string, string>;
  /** Leader of a new process group, like a shell's foreground job. */
  detached?: boolean;
}

export async function startBrokerProcess(options: BrokerProcessOptions): Promise<BrokerProcess> {
  const [file, ...args] = options.command ?? [process.execPath, ...FROM_SOURCE, "broker/src/main.ts"];
  const child = spawn(file ?? "", args, {
    cwd: root,
    detached: options.detached ?? false,
    env: {
      ...process.env,
      DATABASE_URL: "",
      ...(options.dataDir ? { PGMESH_DATA_DIR: options.dataDir } : {}),
      ...(options.postgresPort ? { PGMESH_EMBEDDED_POSTGRES_PORT: String(options.postgresPort) } : {}),
      PGMESH_GRPC_ADDRESS: "127.0.0.1:0",
      PGMESH_METRICS_ADDRESS: "127.0.0.1:0",
      PGMESH_CONSOLE_ADDRESS: "127.0.0.1:0",
      ...options.env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (d) => (output += d));
  child.stderr?.on("data", (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const serving = () => /serving gRPC on (\S+)/.exec(output)?.[1];
  await until(() => serving() !== undefined || child.exitCode !== null, "the broker to start", 60_000);
  const address = serving();
  if (!address) throw new Error(`the broker did not start:\n${output}`);
  return { child, address, output: () => output, exited };
}
