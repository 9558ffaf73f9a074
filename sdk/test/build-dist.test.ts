// Building a package (npm pack's prepack does it) while other tests run the built broker and SDK:
// dist/ must never be missing or half written. It was (rm, then seconds of tsc), and a test that
// ran the broker's CLI at that moment failed with ERR_MODULE_NOT_FOUND.
import { execFile } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
// @ts-expect-error: a plain .mjs build script without type declarations
import { buildDist } from "../../scripts/build-dist.mjs";

const sdkDir = new URL("..", import.meta.url);
const entry = new URL("../dist/index.js", import.meta.url);

describe("npm run build", () => {
  it("replaces the SDK's dist/ in one step: its entry point is there throughout", async () => {
    // npm install built it (the root "prepare" script); a build that removed it first shows below.
    expect(existsSync(entry)).toBe(true);
    let checks = 0;
    let missing = 0;
    const build = promisify(execFile)(process.execPath, ["scripts/build.mjs"], { cwd: sdkDir });
    let done = false;
    build.finally(() => {
      done = true;
    });
    while (!done) {
      checks++;
      if (!existsSync(entry)) missing++;
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    await build;
    expect(checks).toBeGreaterThan(50);
    expect(missing).toBe(0);
    expect(existsSync(entry)).toBe(true);
  }, 60_000);

  it("leaves dist/ holding exactly the new build: changed files replaced, dropped ones removed", () => {
    const dir = mkdtempSync(join(tmpdir(), "pgmesh-build-dist-"));
    try {
      const write = (path: string, text: string) => {
        mkdirSync(join(dir, path, ".."), { recursive: true });
        writeFileSync(join(dir, path), text);
      };
      write(
        "tsconfig.build.json",
        JSON.stringify({ compilerOptions: { module: "nodenext", target: "es2022" }, include: ["src"] }),
      );
      write("src/kept.ts", "export const kept = 1;\n");
      write("src/dropped.ts", "export const dropped = 1;\n");
      write("src/gone/inner.ts", "export const inner = 1;\n");
      buildDist(dir);
      expect(readdirSync(join(dir, "dist")).sort()).toEqual(["dropped.js", "gone", "kept.js"]);

      rmSync(join(dir, "src/dropped.ts"));
      rmSync(join(dir, "src/gone"), { recursive: true });
      write("src/kept.ts", "export const kept = 2;\n");
      write("src/added.ts", "export const added = 1;\n");
      buildDist(dir);
      expect(readdirSync(join(dir, "dist")).sort()).toEqual(["added.js", "kept.js"]);
      expect(readFileSync(join(dir, "dist/kept.js"), "utf8")).toContain("kept = 2");
      expect(readdirSync(dir).filter((name) => name.startsWith("dist."))).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
