// The topic and subscription use cases: argument checks and defaults, then the catalog store.
import { invalidArgument, MeshError, notFound } from "./errors.ts";
import type { Page, Subscription, Topic } from "./model.ts";
import { assertName } from "./names.ts";
import type { CatalogStore } from "./ports.ts";

export const DEFAULT_ACK_DEADLINE_SECONDS = 60;
export const MAX_ACK_DEADLINE_SECONDS = 3600;
const DEFAULT_PAGE_SIZE = 100;
const MAX_PAGE_SIZE = 1000;

export class Admin {
  constructor(private readonly catalog: CatalogStore) {}

  createTopic(name: string): Promise<Topic> {
    return this.catalog.createTopic(assertName("topic", name));
  }

  async getTopic(name: string): Promise<Topic> {
    const topic = await this.catalog.getTopic(assertName("topic", name));
    if (!topic) throw notFound(`topic ${name} does not exist`);
    return topic;
  }

  listTopics(pageSize: number, pageToken: string): Promise<Page<Topic>> {
    return this.catalog.listTopics(checkPageSize(pageSize), checkPageToken(pageToken));
  }

  async deleteTopic(name: string): Promise<void> {
    if (!(await this.catalog.deleteTopic(assertName("topic", name))))
      throw notFound(`topic ${name} does not exist`);
  }

  createSubscription(input: {
    name: string;
    topic: string;
    ackDeadlineSeconds?: number;
  }): Promise<Subscription> {
    const ackDeadlineSeconds = input.ackDeadlineSeconds ?? DEFAULT_ACK_DEADLINE_SECONDS;
    if (
      !Number.isInteger(ackDeadlineSeconds) ||
      ackDeadlineSeconds < 1 ||
      ackDeadlineSeconds > MAX_ACK_DEADLINE_SECONDS
    ) {
      throw invalidArgument(
        `ack_deadline must be a whole number of seconds from 1 to ${MAX_ACK_DEADLINE_SECONDS}, got ${ackDeadlineSeconds}s`,
      );
    }
    return this.catalog.createSubscription({
      name: assertName("subscription", input.name),
      topic: assertName("topic", input.topic),
      ackDeadlineSeconds,
    });
  }

  async getSubscription(name: string): Promise<Subscription> {
    const sub = await this.catalog.getSubscription(assertName("subscription", name));
    if (!sub) throw notFound(`subscription ${name} does not exist`);
    return sub;
  }

  listSubscriptions(topic: string, pageSize: number, pageToken: string): Promise<Page<Subscription>> {
    if (topic) assertName("topic", topic);
    return this.catalog.listSubscriptions(topic, checkPageSize(pageSize), checkPageToken(pageToken));
  }

  async deleteSubscription(name: string): Promise<void> {
    if (!(await this.catalog.deleteSubscription(assertName("subscription", name)))) {
      throw notFound(`subscription ${name} does not exist`);
    }
  }
}

function checkPageSize(pageSize: number): number {
  if (pageSize === 0) return DEFAULT_PAGE_SIZE;
  if (pageSize > MAX_PAGE_SIZE)
    throw invalidArgument(`page_size is at most ${MAX_PAGE_SIZE}, got ${pageSize}`);
  return pageSize;
}

// Page tokens are the last name of the previous page: names are ordered and unique.
function checkPageToken(token: string): string {
  if (token.length > 200)
    throw new MeshError("invalid_argument", "page_token is not one this server returned");
  return token;
}
