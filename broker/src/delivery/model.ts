// The broker's domain records, independent of gRPC and SQL.

export interface Topic {
  name: string;
  createdAt: Date;
}

export interface Subscription {
  name: string;
  topic: string;
  ackDeadlineSeconds: number;
  createdAt: Date;
  /** Where the subscription's deliveries wait; opaque outside store/. */
  queue: string;
}

/** An event as producers send it and consumers receive it. */
export interface EventEnvelope {
  id: string;
  source: string;
  type: string;
  subject: string;
  time: Date | undefined;
  attributes: Record<string, string>;
  orderingKey: string;
  dataTypeUrl: string;
  data: Uint8Array;
}

export interface StoredEvent extends EventEnvelope {
  /** Internal key; the pg-boss jobs carry it. */
  seq: string;
  topic: string;
  publishedAt: Date;
}

export interface PublishOutcome {
  id: string;
  duplicate: boolean;
}

/** One delivery attempt of one event to one subscription, as the queue hands it out. */
export interface Lease {
  jobId: string;
  /** pg-boss's retryCount: 0 on the first attempt. It fences settles to this attempt. */
  retryCount: number;
  eventSeq: string;
}

export interface Page<T> {
  items: T[];
  nextPageToken: string;
}
