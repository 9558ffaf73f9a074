import { afterEach, describe, expect, it, vi } from "vitest";
import { createLogger } from "../../src/log.ts";
import { redactedUrl, redactUrls } from "../../src/redact.ts";

describe("secrets in the log", () => {
  afterEach(() => vi.restoreAllMocks());

  it("masks a connection string's password and leaves the rest readable", () => {
    expect(redactedUrl("postgres://postgres:s3cret@127.0.0.1:54329/pgmesh")).toBe(
      "postgres://postgres:***@127.0.0.1:54329/pgmesh",
    );
    expect(redactedUrl("postgres://postgres@db/pgmesh")).toBe("postgres://postgres@db/pgmesh");
    expect(redactUrls("failed: connect postgresql://app:p%40ss:w0rd@db:5432/x?sslmode=require at y")).toBe(
      "failed: connect postgresql://app:***@db:5432/x?sslmode=require at y",
    );
  });

  it("no line the logger writes holds a URL password, whichever part of the broker wrote it", () => {
    const written: string[] = [];
    vi.spyOn(process.stderr, "write").mockImplementation((chunk) => {
      written.push(String(chunk));
      return true;
    });
    const log = createLogger("debug");
    log.info("using postgres://postgres:hunter2-hunter2@127.0.0.1:5432/pgmesh");
    log.error("the database refused", new Error("at postgres://u:hunter2-hunter2@h/db: no"));
    expect(written).toHaveLength(2);
    expect(written.join("")).not.toContain("hunter2");
    expect(written.join("")).toContain("postgres://postgres:***@127.0.0.1:5432/pgmesh");
  });
});
