// One topic: its schema (message types and their fields), retention, subscriptions, and its stored
// events, newest first or from a position or a time, each payload decoded through the schema.
import type { DescField, DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { useMemo, useState } from "preact/hooks";
import { admin } from "../api.ts";
import { payloadRegistry } from "../decode.ts";
import { age, count, durationSeconds, time } from "../format.ts";
import type { StartPositionSchema } from "../gen/pgmesh/v1/admin_pb.ts";
import { ErrorBox, link, usePoll } from "../ui.tsx";
import { EventSummary, Payload } from "./payload.tsx";

const PAGE = 20;

type From = { kind: "newest" } | { kind: "position"; value: string } | { kind: "time"; value: string };

export function TopicPage({ name }: { name: string }) {
  const topic = usePoll(() => admin.getTopic({ name }).then((r) => r.topic), 0, [name]);
  const schema = usePoll(() => admin.getTopicSchema({ topic: name }).then((r) => r.schema), 0, [name]);
  const subs = usePoll(() => admin.listSubscriptions({ topic: name, pageSize: 100 }), 5000, [name]);
  const registry = useMemo(() => payloadRegistry(schema.data?.fileDescriptorSet), [schema.data]);
  const [from, setFrom] = useState<From>({ kind: "newest" });
  const [draft, setDraft] = useState<From>({ kind: "newest" });
  const [tokens, setTokens] = useState<string[]>([""]);
  const events = usePoll(
    () =>
      admin.listTopicEvents({
        topic: name,
        start: startOf(from),
        pageSize: PAGE,
        pageToken: tokens.at(-1) as string,
      }),
    0,
    [name, from, tokens],
  );
  const types = schema.data?.messageTypes ?? [];
  return (
    <>
      <h1>Topic {name}</h1>
      <ErrorBox error={topic.error} />
      <div class="grid2">
        <section>
          <h2>Settings</h2>
          {topic.data && (
            <dl>
              <dt>Retention</dt>
              <dd>{age(durationSeconds(topic.data.retention))}</dd>
              <dt>Created</dt>
              <dd>{time(topic.data.createTime)}</dd>
            </dl>
          )}
          <h2>Subscriptions</h2>
          <ErrorBox error={subs.error} />
          <ul>
            {subs.data?.subscriptions.map((s) => (
              <li key={s.name}>
                <a href={link(`/subscriptions/${encodeURIComponent(s.name)}`)}>{s.name}</a>
                {s.filter && <span class="muted"> filter {s.filter}</span>}
              </li>
            ))}
          </ul>
        </section>
        <section>
          <h2>Schema</h2>
          <ErrorBox error={schema.error} />
          {schema.data && types.length === 0 && <p class="muted">none: the topic takes any payload</p>}
          {types.map((type) => (
            <MessageFields key={type} desc={registry.getMessage(type)} name={type} />
          ))}
          {schema.data?.updateTime && <p class="muted">set {time(schema.data.updateTime)}</p>}
        </section>
      </div>
      <h2>Events</h2>
      <form
        class="bar"
        onSubmit={(e) => {
          e.preventDefault();
          setTokens([""]);
          setFrom(draft);
        }}
      >
        <select
          aria-label="browse from"
          value={draft.kind}
          onChange={(e) => setDraft({ kind: (e.target as HTMLSelectElement).value, value: "" } as From)}
        >
          <option value="newest">newest first</option>
          <option value="position">from a position</option>
          <option value="time">from a time</option>
        </select>
        {draft.kind !== "newest" && (
          <input
            aria-label="from"
            placeholder={draft.kind === "time" ? "2026-12-01T09:30:00Z" : "position"}
            value={draft.value}
            onInput={(e) => setDraft({ ...draft, value: (e.target as HTMLInputElement).value })}
          />
        )}
        <button type="submit">Show</button>
      </form>
      <ErrorBox error={events.error} />
      {events.data && events.data.events.length === 0 && <p class="muted">no events</p>}
      {events.data && events.data.events.length > 0 && (
        <table data-testid="events">
          <thead>
            <tr>
              <th class="n">Position</th>
              <th>Event</th>
              <th>Payload</th>
            </tr>
          </thead>
          <tbody>
            {events.data.events.map((e) => (
              <tr key={String(e.position)}>
                <td class="n">{count(e.position)}</td>
                <td>
                  <EventSummary event={e.event} />
                </td>
                <td>
                  <Payload event={e.event} registry={registry} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <div class="bar">
        <button type="button" disabled={tokens.length === 1} onClick={() => setTokens(tokens.slice(0, -1))}>
          Previous
        </button>
        <button
          type="button"
          disabled={!events.data?.nextPageToken}
          onClick={() => setTokens([...tokens, events.data?.nextPageToken ?? ""])}
        >
          Next
        </button>
      </div>
    </>
  );
}

function startOf(from: From): MessageInitShape<typeof StartPositionSchema> | undefined {
  if (from.kind === "position")
    return { at: { case: "position", value: BigInt(/^[0-9]+$/.test(from.value) ? from.value : "1") } };
  if (from.kind === "time")
    return { at: { case: "time", value: timestampFromMs(Date.parse(from.value) || 0) } };
  return undefined;
}

function MessageFields({ desc, name }: { desc: DescMessage | undefined; name: string }) {
  if (!desc) return <p>{name}</p>;
  return (
    <div>
      <strong>{desc.typeName}</strong>
      <table>
        <tbody>
          {desc.fields.map((f) => (
            <tr key={f.number}>
              <td class="n">{f.number}</td>
              <td>{f.name}</td>
              <td class="muted">{fieldType(f)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function fieldType(field: DescField): string {
  switch (field.fieldKind) {
    case "scalar":
      return scalarName(field.scalar);
    case "enum":
      return field.enum.typeName;
    case "message":
      return field.message.typeName;
    case "list":
      return `repeated ${field.listKind === "scalar" ? scalarName(field.scalar) : field.listKind === "enum" ? field.enum.typeName : field.message.typeName}`;
    case "map":
      return `map<${scalarName(field.mapKey)}, ${field.mapKind === "scalar" ? scalarName(field.scalar) : field.mapKind === "enum" ? field.enum.typeName : field.message.typeName}>`;
  }
}

const SCALARS: Record<number, string> = {
  1: "double",
  2: "float",
  3: "int64",
  4: "uint64",
  5: "int32",
  6: "fixed64",
  7: "fixed32",
  8: "bool",
  9: "string",
  12: "bytes",
  13: "uint32",
  15: "sfixed32",
  16: "sfixed64",
  17: "sint32",
  18: "sint64",
};

function scalarName(scalar: number): string {
  return SCALARS[scalar] ?? "scalar";
}
