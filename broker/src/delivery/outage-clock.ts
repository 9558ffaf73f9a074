// When this broker last found the database unavailable. Settles retry through an outage, and the
// lapsed-lease sweep waits a little after one, so that the settles held through it land first.
import { MeshError } from "./errors.ts";

export class DatabaseOutageClock {
  private lastUnavailableAt = 0;

  /** Whether the error says the database is unavailable; if so, remembers when. */
  noteIfUnavailable(error: unknown): boolean {
    const unavailable = error instanceof MeshError && error.code === "unavailable";
    if (unavailable) this.lastUnavailableAt = Date.now();
    return unavailable;
  }

  /** Whether the database was last seen unavailable less than `ms` ago. */
  within(ms: number): boolean {
    return Date.now() - this.lastUnavailableAt < ms;
  }
}
