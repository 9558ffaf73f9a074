// Moves events that applications published inside their own transactions (the outbox) onto
// their topics: woken by the outbox's NOTIFY, with the fallback poll as a safety net. Each event
// is validated like a Publish (topic schema included); one that fails is set aside with the reason
// (pgmesh.outbox_failures).
import { invalidArgument } from "./errors.ts";
import type { EventEnvelope } from "./model.ts";
import type { OutboxStore } from "./ports.ts";
import { normaliseEvent } from "./publishing.ts";

const BATCH = 500;

export class OutboxRelay {
  private running = false;
  private again = false;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly outbox: OutboxStore,
    private readonly decode: (bytes: Uint8Array) => EventEnvelope,
    /** Refuses (with a MeshError) an event the topic's schema does not take. */
    private readonly checkSchema: (topic: string, event: EventEnvelope) => Promise<void>,
    /** Called with the topics the relay stored events on. */
    private readonly onPublished: (topics: string[]) => void,
    private readonly onError: (error: unknown) => void,
    private readonly onFailed: (count: number) => void,
  ) {}

  async start(pollIntervalMs: number): Promise<void> {
    await this.outbox.listen(() => this.wake());
    this.timer = setInterval(() => this.wake(), pollIntervalMs);
    this.timer.unref();
    this.wake();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    while (this.running) await new Promise((resolve) => setTimeout(resolve, 10));
  }

  wake(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    void this.run();
  }

  private async prepare(bytes: Uint8Array, topic: string): Promise<EventEnvelope> {
    let decoded: EventEnvelope;
    try {
      decoded = this.decode(bytes);
    } catch {
      throw invalidArgument("the event does not decode as a pgmesh.v1.Event");
    }
    const event = normaliseEvent(decoded, 0);
    await this.checkSchema(topic, event);
    return event;
  }

  private async run(): Promise<void> {
    try {
      do {
        this.again = false;
        for (;;) {
          const { taken, failed, topics } = await this.outbox.relay(BATCH, (bytes, topic) =>
            this.prepare(bytes, topic),
          );
          if (topics.length > 0) this.onPublished(topics);
          if (failed > 0) this.onFailed(failed);
          if (taken < BATCH || this.stopped) break;
        }
      } while (this.again && !this.stopped);
    } catch (error) {
      this.onError(error);
    } finally {
      this.running = false;
    }
  }
}
