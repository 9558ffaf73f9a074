// Shutdown waits for work in progress, but a pass stuck on a database that went away must not hold it.

/** Waits for `work` (settled either way), or for `ms` when it takes longer; true if it settled. */
export async function waitAtMost(work: Promise<unknown> | undefined, ms: number): Promise<boolean> {
  if (!work) return true;
  let timer: NodeJS.Timeout | undefined;
  const settled = await Promise.race([
    work.then(
      () => true,
      () => true,
    ),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(resolve, ms, false);
    }),
  ]);
  clearTimeout(timer);
  return settled;
}
