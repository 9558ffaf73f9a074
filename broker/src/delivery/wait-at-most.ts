// Shutdown waits for work in progress, but a pass stuck on a database that went away must not hold it.

/** Waits for `work`, or for `ms` when it takes longer. */
export async function waitAtMost(work: Promise<unknown> | undefined, ms: number): Promise<void> {
  if (!work) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([work.catch(() => {}), new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}
