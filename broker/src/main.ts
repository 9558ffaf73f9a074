// `npm start`: the broker in the foreground (flags and environment in config.ts).
import { runBroker } from "./run.ts";

await runBroker(process.argv.slice(2));
