// The one unhandled rejection the test runs let through (vitest.config.ts, onUnhandledError).
// postgres.js fetches array types on each new connection without a handler: when a test cuts the
// database during that fetch, its rejection is unhandled. The broker logs it and goes on (run.ts,
// isDatabaseUnavailable), so it is an outage the tests cause, not a defect of the code under test.

/** A lost connection: postgres.js's codes, SQLSTATE class 08, or a terminated backend (57P01-57P03). */
const CONNECTION_LOST =
  /^(CONNECT_TIMEOUT|CONNECTION_CLOSED|CONNECTION_DESTROYED|ECONNRESET|ECONNREFUSED|08...|57P0[123])$/;

/** Whether `error` (possibly serialized from a worker) is postgres.js's type fetch losing its connection. */
export function isTypeFetchConnectionLoss(error: unknown): boolean {
  const { code, query } = (error ?? {}) as { code?: unknown; query?: unknown };
  return CONNECTION_LOST.test(String(code)) && /pg_catalog\.pg_type/.test(String(query));
}
