import { describe, expect, it } from "vitest";
import { withDefaultPort } from "../../src/cli/address.ts";

describe("withDefaultPort", () => {
  it("adds the default port to a host without one, and keeps a given port", () => {
    expect(withDefaultPort("broker.internal")).toBe("broker.internal:50051");
    expect(withDefaultPort("127.0.0.1")).toBe("127.0.0.1:50051");
    expect(withDefaultPort("127.0.0.1:6000")).toBe("127.0.0.1:6000");
    expect(withDefaultPort("::1")).toBe("[::1]:50051");
    expect(withDefaultPort("[::1]")).toBe("[::1]:50051");
    expect(withDefaultPort("[::1]:6000")).toBe("[::1]:6000");
    expect(withDefaultPort("unix:/run/pgmesh.sock")).toBe("unix:/run/pgmesh.sock");
  });
});
