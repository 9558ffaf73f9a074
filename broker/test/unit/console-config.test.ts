// The web console's listener settings: where it listens, `off`, and the gRPC listener's secure
// default applied to it too.
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.ts";

describe("the console address", () => {
  it("defaults to 127.0.0.1:9465, takes a flag over the environment, and `off` turns it off", () => {
    expect(loadConfig([], {}).consoleAddress).toBe("127.0.0.1:9465");
    expect(
      loadConfig(["--console-address", "127.0.0.1:1"], { PGMESH_CONSOLE_ADDRESS: "127.0.0.1:2" })
        .consoleAddress,
    ).toBe("127.0.0.1:1");
    expect(loadConfig([], { PGMESH_CONSOLE_ADDRESS: "off" }).consoleAddress).toBeUndefined();
    expect(loadConfig([], { PGMESH_CONSOLE_ADDRESS: "OFF" }).consoleAddress).toBeUndefined();
    expect(() => loadConfig([], { PGMESH_CONSOLE_ADDRESS: "nowhere" })).toThrow(
      /console address must look like host:port, got "nowhere"/,
    );
  });

  it("off loopback, turns authentication on, and refuses to serve without it unless insecure", () => {
    expect(loadConfig([], { PGMESH_CONSOLE_ADDRESS: "0.0.0.0:9465" }).auth).toBe(true);
    expect(() => loadConfig([], { PGMESH_CONSOLE_ADDRESS: "0.0.0.0:9465", PGMESH_AUTH: "off" })).toThrow(
      /the console address 0.0.0.0:9465 is not loopback, so authentication must be on \(PGMESH_AUTH=on\); to serve it without authentication anyway, set PGMESH_INSECURE=on/,
    );
    const insecure = loadConfig(["--insecure"], {
      PGMESH_CONSOLE_ADDRESS: "0.0.0.0:9465",
      PGMESH_AUTH: "off",
    });
    expect(insecure.auth).toBe(false);
    // A console that is off exposes nothing.
    expect(loadConfig([], { PGMESH_CONSOLE_ADDRESS: "off" }).auth).toBe(false);
  });
});
