// Building a package (npm pack's prepack does it) while other tests run the built broker and SDK:
// dist/ must never be missing or half written. It was (rm, then seconds of tsc), and a test that
// ran the broker's CLI at that moment failed with ERR_MODULE_NOT_FOUND.
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

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
});
