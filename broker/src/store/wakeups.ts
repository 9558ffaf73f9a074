// Cross-broker wake-ups over LISTEN/NOTIFY. A publish sends one notification per transaction
// naming the subscriptions that got deliveries; every broker listening wakes its dispatchers for
// them. The publishing broker wakes its own dispatchers directly and ignores its own echo.
import type { WakeupBus } from "../delivery/ports.ts";
import type { Sql } from "./database.ts";

export const WAKEUP_CHANNEL = "pgmesh_wakeup";
export const DELETION_CHANNEL = "pgmesh_subscription_deleted";

export const deletionPayload = (subscription: { name: string; queue: string }) =>
  JSON.stringify(subscription);

// Postgres caps a notification payload at 8000 bytes; past that we name no subscription, which
// the listener reads as "wake them all".
const MAX_PAYLOAD = 7900;

export function wakeupPayload(brokerId: string, subscriptions: string[]): string {
  const payload = `${brokerId}|${subscriptions.join(",")}`;
  return payload.length <= MAX_PAYLOAD ? payload : `${brokerId}|*`;
}

export class PostgresWakeupBus implements WakeupBus {
  constructor(
    private readonly sql: Sql,
    private readonly brokerId: string,
  ) {}

  async listen(onWake: (subscriptions: string[]) => void): Promise<void> {
    await this.sql.listen(
      WAKEUP_CHANNEL,
      (payload) => {
        const [sender, names = ""] = payload.split("|", 2);
        if (sender === this.brokerId) return;
        onWake(names === "*" ? ["*"] : names.split(","));
      },
      // Called again after a reconnect: anything announced while we were away is picked up.
      () => onWake(["*"]),
    );
  }

  async listenForDeletions(
    onDeleted: (subscription: { name: string; queue: string }) => void,
  ): Promise<void> {
    await this.sql.listen(DELETION_CHANNEL, (payload) =>
      onDeleted(JSON.parse(payload) as { name: string; queue: string }),
    );
  }
}
