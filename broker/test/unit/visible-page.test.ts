// Pages filtered to what the caller may see, over an in-memory listing read in chunks.
import { describe, expect, it } from "vitest";
import type { Page } from "../../src/delivery/model.ts";
import { visiblePage } from "../../src/delivery/visible-page.ts";

const names = Array.from({ length: 50 }, (_, i) => `n${String(i).padStart(2, "0")}`);

function listing() {
  const reads: number[] = [];
  const read = async (limit: number, after: string): Promise<Page<string>> => {
    reads.push(limit);
    const rest = names.filter((n) => n > after);
    const items = rest.slice(0, limit);
    return { items, nextPageToken: rest.length > limit ? (items.at(-1) as string) : "" };
  };
  return { read, reads };
}

const walk = async (
  pageSize: number,
  visible: (n: string) => boolean,
  read: ReturnType<typeof listing>["read"],
) => {
  const pages: Page<string>[] = [];
  let token = "";
  do {
    const page = await visiblePage(pageSize, token, visible, read, (n) => n);
    pages.push(page);
    token = page.nextPageToken;
  } while (token);
  return pages;
};

describe("visiblePage", () => {
  it("fills every page but the last with visible items, and its token is the last of them", async () => {
    const visible = (n: string) => n.endsWith("7") || n === "n49";
    const pages = await walk(2, visible, listing().read);
    expect(pages.map((p) => p.items)).toEqual([
      ["n07", "n17"],
      ["n27", "n37"],
      ["n47", "n49"],
    ]);
    expect(pages.map((p) => p.nextPageToken)).toEqual(["n17", "n37", ""]);
  });

  it("reads one item more than the page when everything is visible", async () => {
    const { read, reads } = listing();
    const page = await visiblePage(
      10,
      "",
      () => true,
      read,
      (n) => n,
    );
    expect(page).toEqual({ items: names.slice(0, 10), nextPageToken: "n09" });
    expect(reads).toEqual([11]);
  });

  it("returns an empty last page without a token when nothing is visible", async () => {
    const { read, reads } = listing();
    expect(
      await visiblePage(
        5,
        "",
        () => false,
        read,
        (n) => n,
      ),
    ).toEqual({ items: [], nextPageToken: "" });
    // Reads grow while they find little: 6, 24, then the rest.
    expect(reads).toEqual([6, 24, 96]);
  });
});
