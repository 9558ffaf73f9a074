// A small line logger on stderr. One line per record, so logs stay greppable under any runner.
// Every line is scrubbed of URL passwords (redact.ts), whichever part of the broker wrote it.
import { redactUrls } from "./redact.ts";

export type Level = "debug" | "info" | "warn" | "error" | "silent";

const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string, error?: unknown): void;
}

export function createLogger(level: Level): Logger {
  const at = ORDER[level];
  const line = (lvl: Level, message: string) => {
    if (ORDER[lvl] >= at)
      process.stderr.write(`${new Date().toISOString()} ${lvl.padEnd(5)} ${redactUrls(message)}\n`);
  };
  return {
    debug: (m) => line("debug", m),
    info: (m) => line("info", m),
    warn: (m) => line("warn", m),
    error: (m, error) => line("error", error === undefined ? m : `${m}: ${describe(error)}`),
  };
}

function describe(error: unknown): string {
  if (error instanceof Error) return error.stack ?? error.message;
  return String(error);
}
