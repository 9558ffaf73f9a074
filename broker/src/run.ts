// Runs the broker in the foreground until SIGTERM or SIGINT: the first signal drains (consumers
// get PGMESH_DRAIN_MS to settle what they hold, the rest goes back to the queue), a second one
// exits at once. Shared by `npm start` and `pgmesh start`.
import { startBroker } from "./broker.ts";
import { loadConfig } from "./config.ts";
import { createLogger } from "./log.ts";
import { databaseFailure, isDatabaseUnavailable } from "./store/database-errors.ts";

export const START_USAGE =
  "usage: pgmesh start [--database-url <url>] [--grpc-address <host:port>] [--metrics-address <host:port>] " +
  "[--console-address <host:port>|off] [--data-dir <dir>] [--embedded-postgres-port <port>] [--log-level debug|info|warn|error|silent] " +
  "[--tls-cert <file> --tls-key <file> [--tls-client-ca <file>]] [--auth on|off] [--insecure] [--metrics-insecure] [--audit-retention-days <days>]\n" +
  "(npm start takes the same flags after --; the environment variables are listed in README.md)";

export async function runBroker(argv: string[]): Promise<void> {
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(START_USAGE);
    return;
  }
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(argv);
  } catch (error) {
    // A bad flag or setting: one line and the usage, not a stack trace.
    console.error(`error: ${(error as Error).message.split(". To specify")[0]}\n${START_USAGE}`);
    process.exit(2);
  }
  const log = createLogger(config.logLevel);
  // postgres.js fetches array types on each new connection with nobody awaiting the result, so a
  // connection lost at that moment rejects where no call can catch it. That is an outage, not a
  // bug: log it and go on (the calls themselves fail with UNAVAILABLE). Anything else still ends
  // the process, as Node would.
  process.on("unhandledRejection", (error) => {
    if (isDatabaseUnavailable(error)) {
      log.warn(`a database connection failed outside any call: ${(error as Error).message}`);
      return;
    }
    log.error("unhandled rejection", error);
    process.exit(1);
  });
  let broker: Awaited<ReturnType<typeof startBroker>>;
  try {
    broker = await startBroker(config, log);
  } catch (error) {
    const database = databaseFailure(error, config.databaseUrl);
    // A database that cannot be reached or refuses the broker is the operator's to fix: one line
    // saying which and why. Anything else is a bug, and its stack trace helps.
    if (database) log.error(`the broker could not start: ${database}`);
    else log.error("the broker could not start", error);
    process.exit(1);
  }
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      log.warn(`${signal} again: exiting without draining`);
      broker.abandon();
      process.exit(130);
    }
    log.info(`${signal}: draining (send it again to exit at once)`);
    broker.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error("shutdown failed", error);
        process.exit(1);
      },
    );
  };
  process.on("SIGHUP", () => {
    log.info("SIGHUP: reloading the TLS certificates");
    broker.reloadCertificates();
  });
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  // Started by npm: when npm goes (SIGTERM or SIGKILL to npm, whose shell may not pass the signal
  // on), the broker must not keep running unsupervised; it drains as if signalled. The parent
  // watched is npm itself only because the start script `exec`s node: through a plain `sh -c` it
  // would be that shell, which outlives a SIGKILLed npm.
  if (process.env.npm_lifecycle_event) {
    const parent = process.ppid;
    const watch = setInterval(() => {
      if (process.ppid === parent) return;
      clearInterval(watch);
      log.warn("npm, which started the broker, has gone");
      onSignal("SIGTERM");
    }, 500);
    watch.unref();
  }
}
