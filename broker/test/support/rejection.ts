// Awaits a call that must fail and returns its gRPC status code and details.
export async function rejection(promise: Promise<unknown>): Promise<{ code: number; details: string }> {
  try {
    await promise;
  } catch (error) {
    const { code, details } = error as { code: number; details: string };
    return { code, details };
  }
  throw new Error("expected the call to fail");
}
