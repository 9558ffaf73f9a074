// Starts a real broker on port 0 against a test database, with a real gRPC client.
import { type ConnectOptions, PgmeshClient } from "@pgmesh/sdk";
import { afterAll, beforeAll } from "vitest";
import { type RunningBroker, startBroker } from "../../src/broker.ts";
import { loadConfig } from "../../src/config.ts";
import { createLogger, type Level, type Logger } from "../../src/log.ts";
import { createTestDatabase, type TestDatabase } from "./database.ts";

export interface TestBroker {
  broker: RunningBroker;
  client: PgmeshClient;
  address: string;
  stop(): Promise<void>;
}

export async function startTestBroker(
  databaseUrl: string,
  env: Record<string, string> = {},
  clientOptions: ConnectOptions = {},
  log: Logger = createLogger((process.env.PGMESH_TEST_LOG_LEVEL as Level) ?? "silent"),
): Promise<TestBroker> {
  const config = loadConfig([], {
    DATABASE_URL: databaseUrl,
    PGMESH_GRPC_ADDRESS: "127.0.0.1:0",
    PGMESH_METRICS_ADDRESS: "127.0.0.1:0",
    PGMESH_CONSOLE_ADDRESS: "127.0.0.1:0",
    PGMESH_POLL_MS: "200",
    PGMESH_SUPERVISE_SECONDS: "1",
    PGMESH_DRAIN_MS: "1000",
    PGMESH_METRICS_REFRESH_MS: "200",
    ...env,
  });
  const broker = await startBroker(config, log);
  const client = new PgmeshClient(broker.grpcAddress, clientOptions);
  return {
    broker,
    client,
    address: broker.grpcAddress,
    stop: async () => {
      client.close();
      await broker.stop();
    },
  };
}

/**
 * A broker on a fresh database for the tests of one file: started before them, stopped and the
 * database dropped after. Read `mesh` and `db` inside tests and hooks (they are set by then).
 */
export function useTestBroker(env: Record<string, string> = {}): {
  readonly mesh: TestBroker;
  readonly db: TestDatabase;
} {
  const state = {} as { mesh: TestBroker; db: TestDatabase };
  beforeAll(async () => {
    state.db = await createTestDatabase();
    state.mesh = await startTestBroker(state.db.url, env);
  });
  afterAll(async () => {
    await state.mesh?.stop();
    await state.db?.drop();
  });
  return state;
}
