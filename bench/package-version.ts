// The installed version of a package, read from the root node_modules (not every package exports
// its package.json).
import { readFileSync } from "node:fs";

export function packageVersion(pkg: string): string {
  const file = new URL(`../node_modules/${pkg}/package.json`, import.meta.url);
  return (JSON.parse(readFileSync(file, "utf8")) as { version: string }).version;
}
