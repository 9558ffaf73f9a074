// The broker process given a database it cannot use: a DATABASE_URL that is not a Postgres URL, a
// host that does not resolve, a port nobody listens on, a role the server does not know. Each
// ends the process with one line saying which and why: no driver stack trace, no password.
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { FROM_SOURCE } from "../support/from-source.ts";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const run = promisify(execFile);

async function start(databaseUrl: string): Promise<{ code: number; output: string }> {
  const result = await run(process.execPath, [...FROM_SOURCE, "broker/src/main.ts"], {
    cwd: root,
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl,
      PGMESH_GRPC_ADDRESS: "127.0.0.1:0",
      PGMESH_METRICS_ADDRESS: "127.0.0.1:0",
      PGMESH_CONSOLE_ADDRESS: "127.0.0.1:0",
      PGMESH_DB_CONNECT_TIMEOUT_MS: "2000",
    },
    timeout: 30_000,
  }).then(
    (done) => ({ code: 0, stdout: done.stdout, stderr: done.stderr }),
    (error) => ({
      code: error.code as number,
      stdout: error.stdout as string,
      stderr: error.stderr as string,
    }),
  );
  return { code: result.code, output: `${result.stdout}${result.stderr}` };
}

describe("a DATABASE_URL the broker cannot use", () => {
  it.each([
    ["not-a-url", 2, "DATABASE_URL (--database-url) is not a URL; expected postgres://"],
    ["http://db.example/pgmesh", 2, "DATABASE_URL (--database-url) is not a Postgres URL (it starts http:)"],
    [
      "postgres://pgmesh:s3cret-pw@unreachable.invalid:5432/mesh",
      1,
      "the database at unreachable.invalid:5432/mesh cannot be reached: getaddrinfo ENOTFOUND",
    ],
    ["postgres://pgmesh:s3cret-pw@127.0.0.1:1/mesh", 1, "the database at 127.0.0.1:1/mesh cannot be reached"],
  ])(
    "%s: exits %i with one line",
    async (url, code, says) => {
      const result = await start(url);
      expect(result.code).toBe(code);
      const [first, ...rest] = result.output.trim().split("\n");
      expect(first).toContain(says);
      // A configuration error is followed by the usage; nothing else follows either.
      expect(rest.filter((line) => !/^usage: |^\(npm start/.test(line))).toEqual([]);
      expect(result.output).not.toMatch(/^\s+at /m);
      expect(result.output).not.toContain("s3cret-pw");
    },
    40_000,
  );
});
