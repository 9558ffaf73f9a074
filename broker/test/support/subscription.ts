// A subscription record for unit tests of the delivery logic (no database): plain, unordered,
// unfiltered, five attempts with dead lettering.
import type { Subscription } from "../../src/delivery/model.ts";

export const testSubscription: Subscription = {
  name: "s",
  topic: "t",
  ackDeadlineSeconds: 10,
  ackedRetentionSeconds: 0,
  ordering: false,
  filter: "",
  maxDeliveryAttempts: 5,
  deadLettering: true,
  retryPolicy: { initialBackoffSeconds: 1, maxBackoffSeconds: 60, multiplier: 2, jitter: 0 },
  createdAt: new Date(),
  queue: "q",
};
