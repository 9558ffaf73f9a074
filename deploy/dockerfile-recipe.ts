// Follows a Dockerfile without Docker, for deploy/image-recipe.test.ts (there is no Docker engine
// where the tests run). Each build stage's filesystem is a directory standing for its root: COPY
// copies from the build context (the files a clean checkout has, less .dockerignore) or from an
// earlier stage, RUN runs natively under /bin/sh as root, with the absolute paths the stage owns
// (its WORKDIRs, VOLUMEs and COPY destinations) moved under that root. The final stage's ENV, USER,
// CMD and HEALTHCHECK are returned for the test to start the container's process as Docker would.
// The base image is this machine: its /bin/sh, the Node.js running the test (which must be the
// major version the FROM line names) and a local user for the image's USER (a system user is
// created when there is none, as node:* images have `node`).
import { execFile, spawn } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { chown, copyFile, cp, link, mkdir, readdir, rm, symlink } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join, posix } from "node:path";
import { promisify } from "node:util";
import {
  type Copy,
  DockerfileParser,
  type Env,
  type Healthcheck,
  type Instruction,
  type JSONInstruction,
  type Run,
} from "dockerfile-ast";

const run = promisify(execFile);
// Docker's .dockerignore rules (Go's filepath.Match, `!` exceptions). CommonJS whose .d.ts declares
// a default export that the module does not have, so required rather than imported.
const dockerignore: typeof import("@balena/dockerignore").default = createRequire(import.meta.url)(
  "@balena/dockerignore",
);

export interface RecipeOptions {
  /** The build context: a repository whose committed and untracked, not ignored files are sent. */
  context: string;
  /** A directory for the stages' roots. */
  workspace: string;
  /** Environment of this machine that reaches the network (registry, proxies, CA certificates). */
  hostEnv: Record<string, string>;
  /** Host directories standing for `RUN --mount=type=cache,target=...` targets, by target. */
  cacheMounts: Record<string, string>;
  /** Called with each step as it starts, for the test's log. */
  onStep?: (step: string) => void;
}

/** The final stage, ready to run: everything is already host paths or container values. */
export interface ImageConfig {
  /** The directory standing for the image's `/`. */
  root: string;
  /** The base image's PATH: its Node.js (this machine's, in `root`), then the system's. */
  path: string;
  /** The image's WORKDIR, as a host path. */
  workdir: string;
  /** The image's ENV, with paths the image owns moved under `root`. */
  env: Record<string, string>;
  user: string | undefined;
  cmd: string[];
  healthcheck: string[] | undefined;
  volumes: string[];
  /** Moves the absolute paths the image owns in `text` under `root`. */
  inImage(text: string): string;
}

interface Stage {
  name: string | undefined;
  root: string;
  workdir: string;
  env: Record<string, string>;
  user: string | undefined;
  cmd: string[] | undefined;
  healthcheck: string[] | undefined;
  volumes: string[];
  owned: string[];
}

/** Builds every stage of `dockerfile` under `options.workspace`; returns the last one. */
export async function buildImage(dockerfile: string, options: RecipeOptions): Promise<ImageConfig> {
  const parsed = DockerfileParser.parse(dockerfile);
  const context = await buildContext(options.context);
  const stages: Stage[] = [];
  let stage: Stage | undefined;
  const instructions = parsed.getInstructions();
  for (const [index, instruction] of instructions.entries()) {
    const keyword = instruction.getKeyword();
    const args = instruction.getArgumentsContent() ?? "";
    if (keyword === "FROM") {
      stage = await fromStage(instruction, instructions.slice(index + 1), stages.length, options);
      stages.push(stage);
      continue;
    }
    if (!stage) throw new Error(`${keyword} before FROM`);
    if (keyword !== "RUN" && keyword !== "CMD" && keyword !== "HEALTHCHECK" && args.includes("$")) {
      throw new Error(`${keyword} ${args}: variables are not followed by this recipe`);
    }
    options.onStep?.(`${keyword} ${args}`.slice(0, 160));
    switch (keyword) {
      case "WORKDIR":
        stage.workdir = posix.resolve(stage.workdir, args);
        await mkdir(join(stage.root, stage.workdir), { recursive: true });
        break;
      case "ENV":
        for (const property of (instruction as Env).getProperties()) {
          stage.env[property.getName()] = property.getValue() ?? "";
        }
        break;
      case "COPY":
        await copy(instruction as Copy, stage, stages, context, options.context);
        break;
      case "RUN":
        await runStep(instruction as Run, stage, options);
        break;
      case "USER":
        stage.user = args;
        break;
      case "VOLUME":
        stage.volumes.push(...instruction.getArguments().map((a) => a.getValue()));
        break;
      case "CMD":
        stage.cmd = execForm(instruction as JSONInstruction, args);
        break;
      case "HEALTHCHECK":
        stage.healthcheck = healthcheckCommand(instruction as Healthcheck);
        break;
      case "EXPOSE":
      case "LABEL":
      case "STOPSIGNAL":
        break;
      default:
        // ARG, ADD, ENTRYPOINT, SHELL, ONBUILD: not followed yet, so refuse rather than pretend.
        throw new Error(`${keyword} is not followed by this recipe: teach deploy/dockerfile-recipe.ts`);
    }
  }
  if (!stage) throw new Error("no FROM");
  const final = stage;
  if (!final.cmd) throw new Error("the image has no CMD");
  const inImage = (text: string) => moveOwnedPaths(final, text);
  return {
    root: final.root,
    path: imagePath(final),
    workdir: join(final.root, final.workdir),
    env: Object.fromEntries(Object.entries(final.env).map(([k, v]) => [k, inImage(v)])),
    user: final.user,
    cmd: final.cmd.map(inImage),
    healthcheck: final.healthcheck?.map(inImage),
    volumes: final.volumes.map((v) => join(final.root, v)),
    inImage,
  };
}

async function fromStage(
  from: Instruction,
  rest: Instruction[],
  index: number,
  options: RecipeOptions,
): Promise<Stage> {
  const [image, as, name] = from.getArguments().map((a) => a.getValue());
  if (as !== undefined && as.toUpperCase() !== "AS") throw new Error(`FROM ${from.getArgumentsContent()}`);
  // The base image is this machine's Node.js: the same major version, or the recipe proves nothing.
  const nodeMajor = /^node:(\d+)/.exec(image ?? "")?.[1];
  if (nodeMajor !== process.versions.node.split(".")[0]) {
    throw new Error(
      `FROM ${image}: the recipe runs on Node.js ${process.versions.node}, a node:${nodeMajor} image`,
    );
  }
  const root = join(options.workspace, `stage-${index}${name ? `-${name}` : ""}`);
  await mkdir(join(root, "root"), { recursive: true });
  await mkdir(join(root, "usr/local/bin"), { recursive: true });
  await link(process.execPath, join(root, "usr/local/bin/node")).catch(() =>
    copyFile(process.execPath, join(root, "usr/local/bin/node")),
  );
  // What the stage owns, from all its instructions, so that a path is moved the same way in a
  // RUN that comes before its VOLUME line as after it.
  const owned = new Set(["/root"]);
  let workdir = "/";
  for (const instruction of rest) {
    const keyword = instruction.getKeyword();
    if (keyword === "FROM") break;
    const args = instruction.getArguments().map((a) => a.getValue());
    if (keyword === "WORKDIR") {
      workdir = posix.resolve(workdir, instruction.getArgumentsContent() ?? "/");
      owned.add(workdir);
    }
    if (keyword === "VOLUME") for (const volume of args) owned.add(volume);
    if (keyword === "USER") await ensureUser(args[0]?.split(":")[0] ?? "");
    if (keyword === "COPY") {
      const destination = args.at(-1) ?? "";
      if (destination.startsWith("/")) owned.add(destination.replace(/\/$/, ""));
    }
  }
  owned.delete("/");
  return {
    name,
    root,
    workdir: "/",
    env: {},
    user: undefined,
    cmd: undefined,
    healthcheck: undefined,
    volumes: [],
    // Longest first, so /app/data is moved before /app would be.
    owned: [...owned].sort((a, b) => b.length - a.length),
  };
}

/** The base image's Node.js first, as in node:*'s /usr/local/bin, then the system's tools. */
function imagePath(stage: Stage): string {
  return `${join(stage.root, "usr/local/bin")}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`;
}

/** Moves each absolute path of `text` that the stage owns under the stage's root. */
function moveOwnedPaths(stage: Stage, text: string): string {
  let result = text;
  for (const path of stage.owned) {
    const escaped = path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    result = result.replace(
      new RegExp(`(^|[\\s"'=:;(])${escaped}(?=$|[\\s"'/;:&|)])`, "g"),
      (_match, before: string) => `${before}${stage.root}${path}`,
    );
  }
  return result;
}

/** The files `docker build <context>` sends: those of a clean checkout (git's), less .dockerignore. */
async function buildContext(context: string): Promise<string[]> {
  const listed = await run("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], {
    cwd: context,
    maxBuffer: 64 * 1024 * 1024,
  });
  const files = listed.stdout.split("\0").filter((file) => file && existsSync(join(context, file)));
  const ignoreFile = join(context, ".dockerignore");
  if (!existsSync(ignoreFile)) return files;
  return dockerignore().add(readFileSync(ignoreFile, "utf8")).filter(files);
}

async function copy(instruction: Copy, stage: Stage, stages: Stage[], context: string[], contextDir: string) {
  const flags = new Map(instruction.getFlags().map((f) => [f.getName(), f.getValue() ?? ""]));
  const unknown = [...flags.keys()].filter((flag) => flag !== "from" && flag !== "chown");
  if (unknown.length > 0) throw new Error(`COPY --${unknown.join(", --")} is not followed by this recipe`);
  const args = instruction.getArguments().map((a) => a.getValue());
  const destinationArg = args.pop() ?? "";
  const destination = posix.resolve(stage.workdir, destinationArg);
  const intoDirectory = args.length > 1 || destinationArg.endsWith("/");
  const from = flags.get("from");
  const source =
    from === undefined ? undefined : stages.find((s, i) => s.name === from || String(i) === from);
  if (from !== undefined && !source) throw new Error(`COPY --from=${from}: no such stage`);
  const copied: string[] = [];
  for (const arg of args) {
    if (/[*?[]/.test(arg)) throw new Error(`COPY ${arg}: wildcards are not followed by this recipe`);
    if (source) {
      const path = join(source.root, posix.resolve("/", arg));
      if (!existsSync(path)) throw new Error(`COPY --from=${from} ${arg}: not found`);
      const target = statSync(path).isDirectory()
        ? join(stage.root, destination)
        : join(stage.root, intoDirectory ? posix.join(destination, posix.basename(arg)) : destination);
      await cp(path, target, { recursive: true, verbatimSymlinks: true });
      copied.push(target);
      continue;
    }
    const name = posix.normalize(arg).replace(/^\.\/?|\/$/g, "");
    const files = context.filter((file) => name === "" || file === name || file.startsWith(`${name}/`));
    if (files.length === 0) throw new Error(`COPY ${arg}: not in the build context`);
    for (const file of files) {
      // A directory's contents go into the destination; a file goes into it, or becomes it.
      const inside =
        file === name
          ? intoDirectory || isDirectory(join(stage.root, destination))
            ? posix.join(destination, posix.basename(file))
            : destination
          : posix.join(destination, name === "" ? file : posix.relative(name, file));
      const target = join(stage.root, inside);
      await mkdir(dirname(target), { recursive: true });
      await cp(join(contextDir, file), target, { verbatimSymlinks: true });
      copied.push(target);
    }
  }
  const owner = flags.get("chown");
  if (owner) {
    const [uid, gid] = await userIds(owner);
    for (const target of copied) await chownTree(target, uid, gid);
  }
}

const isDirectory = (path: string) => existsSync(path) && statSync(path).isDirectory();

async function chownTree(path: string, uid: number, gid: number) {
  await chown(path, uid, gid);
  if (!statSync(path).isDirectory()) return;
  for (const entry of await readdir(path)) await chownTree(join(path, entry), uid, gid);
}

/** The base image's user, here: a system user with its own group, no home and no shell. */
async function ensureUser(user: string) {
  if (user === "root" || /^\d+$/.test(user)) return;
  await run("id", ["-u", user]).catch(() =>
    run("useradd", ["--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", user]),
  );
}

/** The numeric ids of `user[:group]` on this machine. */
export async function userIds(spec: string): Promise<[number, number]> {
  const [user = "", group] = spec.split(":");
  const uid = Number((await run("id", ["-u", user])).stdout.trim());
  const gid = Number(
    group
      ? (await run("getent", ["group", group])).stdout.split(":")[2]
      : (await run("id", ["-g", user])).stdout.trim(),
  );
  return [uid, gid];
}

async function runStep(instruction: Run, stage: Stage, options: RecipeOptions) {
  const mounts: string[] = [];
  for (const flag of instruction.getFlags()) {
    const settings = Object.fromEntries((flag.getValue() ?? "").split(",").map((kv) => kv.split("=")));
    if (flag.getName() !== "mount" || settings.type !== "cache" || !settings.target) {
      throw new Error(`RUN --${flag.getName()}=${flag.getValue()} is not followed by this recipe`);
    }
    // A cache mount is a directory the builder keeps between builds, left out of the image.
    const host = options.cacheMounts[settings.target];
    if (!host) throw new Error(`RUN: no host directory stands for the cache mount ${settings.target}`);
    const target = join(stage.root, settings.target);
    if (existsSync(target)) throw new Error(`RUN: the cache mount ${settings.target} hides a directory`);
    await mkdir(dirname(target), { recursive: true });
    await symlink(host, target);
    mounts.push(target);
  }
  const command = moveOwnedPaths(stage, instruction.getArgumentsContent() ?? "");
  const env = {
    ...options.hostEnv,
    PATH: imagePath(stage),
    HOME: join(stage.root, "root"),
    ...Object.fromEntries(Object.entries(stage.env).map(([k, v]) => [k, moveOwnedPaths(stage, v)])),
  };
  const shell = stage.user ? ["setpriv", ...(await setprivArgs(stage.user)), "/bin/sh"] : ["/bin/sh"];
  try {
    await new Promise<void>((resolve, reject) => {
      const child = spawn(shell[0] ?? "", [...shell.slice(1), "-c", command], {
        cwd: join(stage.root, stage.workdir),
        env,
        stdio: ["ignore", "pipe", "pipe"],
      });
      let output = "";
      child.stdout.on("data", (chunk: Buffer) => {
        output += chunk;
      });
      child.stderr.on("data", (chunk: Buffer) => {
        output += chunk;
      });
      child.on("error", reject);
      child.on("exit", (code) =>
        code === 0
          ? resolve()
          : reject(new Error(`RUN ${command}\nexited with ${code}:\n${output.slice(-8000)}`)),
      );
    });
  } finally {
    for (const mount of mounts) await rm(mount, { force: true });
  }
}

/** setpriv's arguments to become `user[:group]`, as Docker's USER does. */
export async function setprivArgs(user: string): Promise<string[]> {
  const [uid, gid] = await userIds(user);
  return [`--reuid=${uid}`, `--regid=${gid}`, "--clear-groups", "--"];
}

function execForm(instruction: JSONInstruction, args: string): string[] {
  const json = instruction.getJSONStrings().map((s) => s.getJSONValue());
  return json.length > 0 ? json : ["/bin/sh", "-c", args];
}

function healthcheckCommand(instruction: Healthcheck): string[] | undefined {
  const subcommand = instruction.getSubcommand()?.getValue().toUpperCase();
  if (subcommand === "NONE") return undefined;
  if (subcommand !== "CMD") throw new Error(`HEALTHCHECK ${subcommand}: expected CMD or NONE`);
  const content = instruction.getArgumentsContent() ?? "";
  const command = content.slice(content.search(/CMD\s/i) + 3).trim();
  return command.startsWith("[") ? (JSON.parse(command) as string[]) : ["/bin/sh", "-c", command];
}
