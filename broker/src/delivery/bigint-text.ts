// Ids and page tokens that are Postgres bigints travel as decimal text: anything beyond int64 must be
// refused before it reaches the database (which would answer with an error, not a refusal).
const MAX_BIGINT = 2n ** 63n - 1n;

/** Whether text is a non-negative number that fits a Postgres bigint. */
export function isBigintText(text: string): boolean {
  return /^\d{1,19}$/.test(text) && BigInt(text) <= MAX_BIGINT;
}
