// An event's payload, decoded to JSON through the topic's schema, or its bytes when it cannot be.
import type { Registry } from "@bufbuild/protobuf";
import { decodePayload } from "../decode.ts";
import { hexDump, time } from "../format.ts";
import type { Event } from "../gen/pgmesh/v1/event_pb.ts";

export function EventSummary({ event }: { event: Event | undefined }) {
  if (!event) return <span class="muted">-</span>;
  return (
    <div>
      <div>
        <strong>{event.type || "(no type)"}</strong> <span class="muted">id</span> {event.id}
      </div>
      <div class="muted">
        {event.source}
        {event.subject ? ` · ${event.subject}` : ""}
        {event.orderingKey ? ` · key ${event.orderingKey}` : ""} · published {time(event.publishTime)}
      </div>
    </div>
  );
}

export function Payload({ event, registry }: { event: Event | undefined; registry: Registry }) {
  const decoded = decodePayload(event?.data, registry);
  const attributes = Object.entries(event?.attributes ?? {});
  return (
    <div>
      {attributes.length > 0 && (
        <div class="muted">attributes: {attributes.map(([k, v]) => `${k}=${v}`).join(", ")}</div>
      )}
      {decoded.kind === "none" && <span class="muted">no payload</span>}
      {decoded.kind === "json" && <pre data-payload="json">{JSON.stringify(decoded.json, null, 2)}</pre>}
      {decoded.kind === "raw" && (
        <>
          <div class="muted">
            {decoded.typeName || "untyped"}: raw bytes ({decoded.why})
          </div>
          <pre data-payload="raw">{hexDump(decoded.bytes)}</pre>
        </>
      )}
    </div>
  );
}
