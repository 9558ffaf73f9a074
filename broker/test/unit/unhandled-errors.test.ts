// Which unhandled rejections the test runs let through: postgres.js's type fetch losing its
// connection, in the shapes seen in CI, and nothing else.
import { describe, expect, it } from "vitest";
import { isTypeFetchConnectionLoss } from "../support/unhandled-errors.ts";

const typeFetch = `
      select b.oid, b.typarray
      from pg_catalog.pg_type a
      left join pg_catalog.pg_type b on b.oid = a.typelem`;

describe("isTypeFetchConnectionLoss", () => {
  it("lets through the type fetch cut by a lost connection or a terminated backend", () => {
    // pg_terminate_backend during the fetch (the fault suite, CI 2026-12-03), as the worker serialized it.
    expect(isTypeFetchConnectionLoss({ severity: "FATAL", code: "57P01", query: typeFetch })).toBe(true);
    for (const code of ["CONNECTION_CLOSED", "ECONNRESET", "08006", "57P02"]) {
      expect(isTypeFetchConnectionLoss(Object.assign(new Error("lost"), { code, query: typeFetch }))).toBe(
        true,
      );
    }
  });

  it("does not let through other queries' errors, other codes, or errors without a query", () => {
    expect(isTypeFetchConnectionLoss({ code: "57P01", query: "SELECT 1" })).toBe(false);
    expect(isTypeFetchConnectionLoss({ code: "42P01", query: typeFetch })).toBe(false);
    expect(isTypeFetchConnectionLoss(new Error("boom"))).toBe(false);
    expect(isTypeFetchConnectionLoss(undefined)).toBe(false);
  });
});
