// The overview's summaries: searched, trimmed to what the caller may read, and paged in memory.
import { describe, expect, it } from "vitest";
import { summaryPage } from "../../src/delivery/overview.ts";

const names = Array.from({ length: 1000 }, (_, i) => `topic-${String(i).padStart(4, "0")}`).reverse();
const page = (
  request: Partial<{ search: string; pageSize: number; pageToken: string }>,
  visible = (_: string) => true,
) =>
  summaryPage(
    names,
    (n) => [n],
    (n) => n,
    visible,
    { search: "", pageSize: 0, pageToken: "", ...request },
  );

describe("summaryPage", () => {
  it("pages 1,000 names in name order with a total", () => {
    const first = page({ pageSize: 50 });
    expect(first.items[0]).toBe("topic-0000");
    expect(first.items).toHaveLength(50);
    expect(first.totalSize).toBe(1000);
    const last = page({ pageSize: 50, pageToken: "950" });
    expect(last.items.at(-1)).toBe("topic-0999");
    expect(last.nextPageToken).toBe("");
    expect(page({}).items).toHaveLength(100);
  });

  it("searches case-insensitively and counts only what matches", () => {
    const found = page({ search: " TOPIC-099 " });
    expect(found.items).toEqual(Array.from({ length: 10 }, (_, i) => `topic-099${i}`));
    expect(found.totalSize).toBe(10);
  });

  it("shows and counts only what the caller may read", () => {
    const mine = page({ pageSize: 5 }, (n) => n.endsWith("7"));
    expect(mine.totalSize).toBe(100);
    expect(mine.items).toEqual(["topic-0007", "topic-0017", "topic-0027", "topic-0037", "topic-0047"]);
  });

  it("refuses a page size over 1,000 and a token it did not make", () => {
    expect(() => page({ pageSize: 1001 })).toThrow("page_size is at most 1000, got 1001");
    expect(() => page({ pageToken: "topic-1" })).toThrow("page_token is not one this server returned");
  });
});
