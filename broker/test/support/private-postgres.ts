// A Postgres cluster a test owns outright (initdb, pg_ctl from the machine's PostgreSQL 15), so it
// can stop, restart and kill it without touching the server other tests share. As root the
// cluster runs as `postgres`, which must reach its folder.
import { spawnSync } from "node:child_process";
import { chmod, chown, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./free-port.ts";

const BIN = process.env.PGMESH_FAULT_PG_BIN ?? "/usr/lib/postgresql/15/bin";

export class PrivatePostgres {
  private constructor(
    private readonly dir: string,
    readonly port: number,
    private readonly ids: { uid: number; gid: number } | undefined,
  ) {}

  static async create(): Promise<PrivatePostgres> {
    const dir = await mkdtemp(join(tmpdir(), "pgmesh-faults-"));
    await chmod(dir, 0o755);
    const ids = process.getuid?.() === 0 ? postgresUser() : undefined;
    const cluster = new PrivatePostgres(dir, await freePort(), ids);
    await mkdir(cluster.dataDir, { mode: 0o700 });
    // The server writes its log and socket next to the data.
    if (ids) for (const path of [dir, cluster.dataDir]) await chown(path, ids.uid, ids.gid);
    cluster.run("initdb", [
      "-D",
      cluster.dataDir,
      "-U",
      "postgres",
      "--auth=trust",
      "-E",
      "UTF8",
      "--no-sync",
    ]);
    await cluster.start();
    return cluster;
  }

  get dataDir(): string {
    return join(this.dir, "data");
  }

  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  async start(): Promise<void> {
    const options = `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off`;
    this.run("pg_ctl", ["-D", this.dataDir, "-o", options, "-l", join(this.dir, "log"), "-w", "start"]);
  }

  /** fast: connections are ended and the server stops cleanly; immediate: as if it crashed. */
  async stop(mode: "fast" | "immediate" = "fast"): Promise<void> {
    this.run("pg_ctl", ["-D", this.dataDir, "-m", mode, "-w", "stop"]);
  }

  async destroy(): Promise<void> {
    spawnSync(join(BIN, "pg_ctl"), ["-D", this.dataDir, "-m", "immediate", "-w", "stop"], {
      ...(this.ids ?? {}),
      stdio: "ignore",
    });
    await rm(this.dir, { recursive: true, force: true });
  }

  private run(command: string, args: string[]): void {
    const result = spawnSync(join(BIN, command), args, {
      ...(this.ids ?? {}),
      encoding: "utf8",
      cwd: this.dir,
    });
    if (result.status !== 0) {
      throw new Error(`${command} failed (${result.status}): ${result.stderr || result.stdout}`);
    }
  }
}

function postgresUser(): { uid: number; gid: number } {
  const uid = spawnSync("id", ["-u", "postgres"], { encoding: "utf8" });
  const gid = spawnSync("id", ["-g", "postgres"], { encoding: "utf8" });
  if (uid.status !== 0 || gid.status !== 0)
    throw new Error("the fault suite needs a `postgres` user when run as root");
  return { uid: Number(uid.stdout), gid: Number(gid.stdout) };
}
