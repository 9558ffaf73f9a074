// pgmesh.v1.PublisherService on top of the delivery layer's Publisher.
import type { PublisherServiceServer } from "@pgmesh/proto/pgmesh/v1/publisher";
import type { Publisher } from "../delivery/publishing.ts";
import { envelopeFromWire } from "./convert.ts";
import type { ErrorLogger } from "./status.ts";
import { type RequestObserver, unary } from "./unary.ts";

export function publisherHandlers(
  publisher: Publisher,
  log: ErrorLogger,
  observe: RequestObserver,
): PublisherServiceServer {
  const rpc = <Req, Res>(method: string, handle: (request: Req) => Promise<Res>) =>
    unary(method, log, handle, observe);
  return {
    publish: rpc("Publish", async (request) => {
      const results = await publisher.publish(request.topic, request.events.map(envelopeFromWire));
      return { results };
    }),
  };
}
