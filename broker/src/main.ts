// `npm start`: runs the broker until SIGTERM or SIGINT. The first signal drains (consumers get
// PGMESH_DRAIN_MS to settle what they hold, the rest goes back to the queue); a second one exits
// at once.
import { startBroker } from "./broker.ts";
import { loadConfig } from "./config.ts";
import { createLogger } from "./log.ts";

const config = loadConfig(process.argv.slice(2));
const log = createLogger(config.logLevel);

try {
  const broker = await startBroker(config, log);
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      log.warn(`${signal} again: exiting without draining`);
      process.exit(1);
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
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
} catch (error) {
  log.error("the broker could not start", error);
  process.exit(1);
}
