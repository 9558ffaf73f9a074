// The folder the embedded Postgres binaries are staged in (as root, under /var/tmp) must be ours
// alone: anything another user could have planted there is refused.
import { chmod, chown, mkdir, mkdtemp, rm, stat, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureSafeStageRoot } from "../../src/store/embedded-postgres.ts";

let base: string;
beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), "pgmesh-stage-"));
});
afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

describe("the staging folder", () => {
  it("is created 0755 when missing, and accepted again as it is", async () => {
    const root = join(base, "fresh");
    await ensureSafeStageRoot(root);
    expect((await stat(root)).mode & 0o777).toBe(0o755);
    await expect(ensureSafeStageRoot(root)).resolves.toBeUndefined();
  });

  it("is refused when others may write to it, when it is a symlink, or a file", async () => {
    const open = join(base, "open");
    await mkdir(open, { mode: 0o777 });
    await chmod(open, 0o777);
    await expect(ensureSafeStageRoot(open)).rejects.toThrow(/writable by no one else .*mode 777/);
    const link = join(base, "link");
    await symlink(join(base, "fresh"), link);
    await expect(ensureSafeStageRoot(link)).rejects.toThrow(/found a symlink/);
  });

  it.runIf(process.getuid?.() === 0)("is refused when another user owns it", async () => {
    const planted = join(base, "planted");
    await mkdir(planted, { mode: 0o755 });
    await chown(planted, 65534, 65534);
    await expect(ensureSafeStageRoot(planted)).rejects.toThrow(/owned by uid 65534/);
  });
});
