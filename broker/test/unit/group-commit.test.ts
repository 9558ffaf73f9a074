import { describe, expect, it } from "vitest";
import { GroupCommit, type GroupResult } from "../../src/store/group-commit.ts";

/** A run() whose groups are recorded and released by the test. */
function gatedRun() {
  const groups: number[][] = [];
  const gates: (() => void)[] = [];
  const run = async (items: number[]): Promise<GroupResult<number>[]> => {
    groups.push(items);
    await new Promise<void>((resolve) => gates.push(resolve));
    if (items.includes(13) && items.length > 1) throw new Error("the group failed");
    if (items.includes(13)) throw new Error("13 is unlucky");
    return items.map((n) =>
      n < 0 ? { ok: false, error: new Error(`negative ${n}`) } : { ok: true, value: n * 2 },
    );
  };
  const releaseAll = async () => {
    while (gates.length > 0) {
      for (const gate of gates.splice(0)) gate();
      await new Promise((resolve) => setImmediate(resolve));
    }
  };
  return { groups, gates, run, releaseAll };
}

describe("group commit", () => {
  it("sends a lone request at once, alone", async () => {
    const g = gatedRun();
    const commits = new GroupCommit(g.run, { maxInFlight: 2, maxWeight: 100 });
    const result = commits.submit(1, 1);
    expect(g.groups).toEqual([[1]]);
    await g.releaseAll();
    expect(await result).toBe(2);
  });

  it("groups the requests that arrive while every slot is committing", async () => {
    const g = gatedRun();
    const commits = new GroupCommit(g.run, { maxInFlight: 2, maxWeight: 100 });
    const results = [1, 2, 3, 4, 5].map((n) => commits.submit(n, 1));
    expect(g.groups).toEqual([[1], [2]]);
    expect(commits.waiting).toBe(3);
    await g.releaseAll();
    expect(g.groups).toEqual([[1], [2], [3, 4, 5]]);
    expect(await Promise.all(results)).toEqual([2, 4, 6, 8, 10]);
  });

  it("caps a group's weight, but a single heavy request still goes", async () => {
    const g = gatedRun();
    const commits = new GroupCommit(g.run, { maxInFlight: 1, maxWeight: 10 });
    const results = [commits.submit(1, 1), commits.submit(2, 6), commits.submit(3, 6), commits.submit(4, 50)];
    await g.releaseAll();
    expect(g.groups).toEqual([[1], [2], [3], [4]]);
    expect(await Promise.all(results)).toEqual([2, 4, 6, 8]);
  });

  it("fails only the request whose own result is an error", async () => {
    const g = gatedRun();
    const commits = new GroupCommit(g.run, { maxInFlight: 1, maxWeight: 10 });
    const results = Promise.allSettled([1, -2, 3].map((n) => commits.submit(n, 1)));
    await g.releaseAll();
    const settled = await results;
    expect(settled.map((s) => s.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
  });

  it("retries each request of a failed group alone, so only the culprit fails", async () => {
    const g = gatedRun();
    const commits = new GroupCommit(g.run, { maxInFlight: 1, maxWeight: 10 });
    const first = commits.submit(0, 1);
    const rest = Promise.allSettled([12, 13, 14].map((n) => commits.submit(n, 1)));
    await g.releaseAll();
    expect(await first).toBe(0);
    const settled = await rest;
    expect(settled.map((s) => s.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect((settled[1] as PromiseRejectedResult).reason.message).toBe("13 is unlucky");
    expect(g.groups).toEqual([[0], [12, 13, 14], [12], [13], [14]]);
  });
});
