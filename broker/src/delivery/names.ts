// Topic and subscription names. Kept narrow so they are safe as pg-boss queue names, in URLs,
// in metric labels and in shell commands.
import { invalidArgument } from "./errors.ts";

const NAME = /^[a-z][a-z0-9._-]{0,99}$/;

export function assertName(kind: "topic" | "subscription", name: string): string {
  if (!name) throw invalidArgument(`${kind} name is required`);
  if (!NAME.test(name)) {
    throw invalidArgument(
      `${kind} name ${JSON.stringify(name.slice(0, 120))} is not valid: use 1-100 characters of a-z, 0-9, '.', '_' and '-', starting with a letter`,
    );
  }
  return name;
}
