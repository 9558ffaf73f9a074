// Which database errors mean "the database cannot be reached or is restarting": those become
// MeshError("unavailable"), so a client sees UNAVAILABLE and retries, instead of INTERNAL. The
// store's objects are wrapped once (in broker.ts) rather than every query site.
import { MeshError } from "../delivery/errors.ts";

// SQLSTATE classes and codes: 08 connection exception, 53300 too many connections, 57P01-57P03
// admin/crash shutdown and cannot connect now, 57014 statement timeout (query_canceled), 40001 and
// 40P01 serialization failure and deadlock (safe to retry as a whole).
const TRANSIENT_SQLSTATE = /^(08...|53300|57P0[123]|57014|40001|40P01)$/;
// postgres.js and Node socket codes.
const TRANSIENT_CODES = new Set([
  "CONNECT_TIMEOUT",
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
]);
// node-postgres (pg-boss's pool) reports these only in the message.
const TRANSIENT_MESSAGES =
  /Connection terminated|timeout exceeded when trying to connect|Query read timeout|not queryable|Connection ended|terminating connection/i;

const LOST_CONNECTION_CODES = new Set([
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "57P01",
  "57P02",
]);

/** Whether the error ended the connection it happened on (not just the statement). */
export function isConnectionLost(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === "string" && LOST_CONNECTION_CODES.has(code);
}

export function isDatabaseUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string" && (TRANSIENT_CODES.has(code) || TRANSIENT_SQLSTATE.test(code))) return true;
  if (TRANSIENT_MESSAGES.test(error.message)) return true;
  return error.cause !== undefined && error.cause !== error && isDatabaseUnavailable(error.cause);
}

export function unavailableError(cause: unknown): MeshError {
  return new MeshError("unavailable", "the database is unavailable right now; retry shortly", { cause });
}

// Errors that say the database itself cannot be reached (not that one statement was slow or lost a
// race): they close the gate below.
const UNREACHABLE_SQLSTATE = /^(08...|57P0[123])$/;

function isDatabaseUnreachable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string" && (TRANSIENT_CODES.has(code) || UNREACHABLE_SQLSTATE.test(code))) return true;
  if (TRANSIENT_MESSAGES.test(error.message)) return true;
  return error.cause !== undefined && error.cause !== error && isDatabaseUnreachable(error.cause);
}

/**
 * Fails calls at once while the database is known to be unreachable, instead of letting each wait
 * for its own connect timeout in postgres.js's queue (one after another: a call could wait several
 * timeouts). The first unreachable error closes the gate; a probe every `retryMs` opens it again.
 */
export class DatabaseGate {
  private down = false;

  constructor(
    private readonly probe: () => Promise<unknown>,
    private readonly retryMs = 250,
  ) {}

  get isOpen(): boolean {
    return !this.down;
  }

  /** Fails at once while the database is unreachable; otherwise classifies the call's errors. */
  watch<T>(call: () => Promise<T>): Promise<T> {
    if (this.down) return Promise.reject(unavailableError(undefined));
    return call().catch((error: unknown) => {
      if (!isDatabaseUnavailable(error)) throw error;
      if (isDatabaseUnreachable(error)) this.close();
      throw unavailableError(error);
    });
  }

  private close(): void {
    if (this.down) return;
    this.down = true;
    void (async () => {
      while (this.down) {
        await new Promise((resolve) => setTimeout(resolve, this.retryMs).unref());
        await this.probe().then(
          () => {
            this.down = false;
          },
          () => {},
        );
      }
    })();
  }
}

/**
 * The object with every async method going through the gate: transient database errors become
 * MeshError("unavailable"), and while the database is unreachable calls fail at once.
 */
export function failingFastAsUnavailable<T extends object>(target: T, gate: DatabaseGate): T {
  return new Proxy(target, {
    get(object, property, receiver) {
      const value = Reflect.get(object, property, receiver);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        let result: unknown;
        // Only promises go through the gate: a synchronous method keeps its result.
        const watched = gate.watch(() => {
          result = value.apply(object, args);
          return result instanceof Promise ? result : Promise.resolve(result);
        });
        if (result !== undefined && !(result instanceof Promise)) return result;
        return watched;
      };
    },
  });
}

/**
 * What went wrong with the database, in one line for an operator (host, port and database, never
 * the user's password), or undefined when `error` is not the database's doing.
 */
export function databaseFailure(error: unknown, url: string | undefined): string | undefined {
  if (!(error instanceof Error)) return undefined;
  const target = url === undefined ? "the embedded Postgres" : `the database at ${databaseTarget(url)}`;
  if (isDatabaseUnavailable(error)) return `${target} cannot be reached: ${error.message}`;
  const code = (error as { code?: unknown }).code;
  // Any other SQLSTATE: the server answered and refused (a wrong password, no such database).
  if (typeof code === "string" && /^[0-9A-Z]{5}$/.test(code)) return `${target} refused: ${error.message}`;
  return undefined;
}

function databaseTarget(url: string): string {
  const parsed = new URL(url);
  const host = parsed.hostname || parsed.searchParams.get("host") || "localhost";
  return `${host}:${parsed.port || "5432"}${parsed.pathname === "/" ? "" : parsed.pathname}`;
}
