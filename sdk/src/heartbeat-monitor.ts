// Tells a quiet stream from a dead one. The broker writes to an idle stream at least once per
// announced heartbeat interval, so a whole interval without any message is a missed beat; after
// `maxMissed` of them in a row the stream is taken for dead (a half-open connection never errors
// by itself) and `onDead` runs once.

export class HeartbeatMonitor {
  private missed = 0;
  private heard = false;
  private readonly timer: NodeJS.Timeout;

  constructor(
    readonly intervalMs: number,
    readonly maxMissed: number,
    private readonly onDead: (missed: number) => void,
  ) {
    this.timer = setInterval(() => this.check(), intervalMs);
    // A monitor alone must not keep a process alive.
    this.timer.unref();
  }

  /** Any message from the broker counts as a beat: every write re-arms its heartbeat. */
  beat(): void {
    this.heard = true;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private check(): void {
    if (this.heard) {
      this.heard = false;
      this.missed = 0;
      return;
    }
    this.missed++;
    if (this.missed >= this.maxMissed) {
      this.stop();
      this.onDead(this.missed);
    }
  }
}
