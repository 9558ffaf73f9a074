// Starts bench/broker-process.ts as a child process and reads its memory from /proc.
import { type ChildProcess, fork } from "node:child_process";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** What bench/broker-process.ts reports over IPC once it serves. */
export interface BrokerAddresses {
  grpcAddress: string;
  metricsAddress: string;
}

export class BrokerChild {
  private constructor(
    private readonly child: ChildProcess,
    readonly grpcAddress: string,
    /** Where the broker serves /metrics. */
    readonly metricsAddress: string,
  ) {}

  /**
   * Starts the broker of this checkout, or with `checkout` (a directory) the broker of another
   * checkout of pgmesh (its bench/broker-process.ts and its own node_modules): the "before" code of
   * a before/after comparison, driven by the same bench in the same run.
   */
  static async start(databaseUrl: string, checkout?: string): Promise<BrokerChild> {
    const script = checkout
      ? resolve(checkout, "bench/broker-process.ts")
      : fileURLToPath(new URL("../broker-process.ts", import.meta.url));
    const child = fork(script, [], {
      cwd: checkout ? resolve(checkout) : undefined,
      // BENCH_BROKER_NODE_ARGS adds Node flags to the broker alone, e.g. "--cpu-prof --cpu-prof-dir=prof".
      execArgv: [
        "--import",
        "tsx",
        ...(process.env.BENCH_BROKER_NODE_ARGS?.split(/\s+/).filter(Boolean) ?? []),
      ],
      env: { ...process.env, BENCH_BROKER_DATABASE_URL: databaseUrl },
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    const { grpcAddress, metricsAddress } = await new Promise<BrokerAddresses>((resolve, reject) => {
      child.once("message", (message) => resolve(message as BrokerAddresses));
      child.once("error", reject);
      child.once("exit", (code) =>
        reject(new Error(`the pgmesh broker exited with code ${code} while starting`)),
      );
    });
    return new BrokerChild(child, grpcAddress, metricsAddress);
  }

  /** Resident set size in bytes (VmRSS), or undefined when it cannot be read. */
  rssBytes(): number | undefined {
    try {
      const status = readFileSync(`/proc/${this.child.pid}/status`, "utf8");
      const kb = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
      return kb ? Number(kb) * 1024 : undefined;
    } catch {
      return undefined;
    }
  }

  /** Graceful stop; killed after 30 s. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once("exit", () => resolve()));
    this.child.send("stop");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 30_000);
    await exited;
    clearTimeout(timer);
  }
}
