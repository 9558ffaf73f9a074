// One subscription: its policy, numbers, streams here, dead letters (decoded, redrive and purge),
// parked keys and seek. Actions that need `manage` are offered only when the caller's token has it
// (listing dead letters needs it too, so its answer tells); a refused action shows the broker's reason.

import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { useMemo, useState } from "preact/hooks";
import { admin, reason } from "../api.ts";
import { payloadRegistry } from "../decode.ts";
import { age, count, durationSeconds, time } from "../format.ts";
import type { DeadLetter, StartPositionSchema } from "../gen/pgmesh/v1/admin_pb.ts";
import { Confirm, ErrorBox, link, usePoll } from "../ui.tsx";
import { EventSummary, Payload } from "./payload.tsx";

const DEAD_LETTER_PAGE = 50;

type Pending = { question: string; run: () => Promise<string> };

export function SubscriptionPage({ name }: { name: string }) {
  const sub = usePoll(() => admin.getSubscription({ name }).then((r) => r.subscription), 0, [name]);
  const stats = usePoll(() => admin.getSubscriptionStats({ name }), 2000, [name]);
  const consumers = usePoll(() => admin.listConsumers({ subscription: name }), 5000, [name]);
  const topic = sub.data?.topic;
  const schema = usePoll(
    async () => (topic ? (await admin.getTopicSchema({ topic }).catch(() => undefined))?.schema : undefined),
    0,
    [topic],
  );
  const registry = useMemo(() => payloadRegistry(schema.data?.fileDescriptorSet), [schema.data]);
  // Page tokens of the pages seen so far, so that Previous works (the API pages forward only).
  const [tokens, setTokens] = useState<string[]>([""]);
  const pageToken = tokens.at(-1) as string;
  const deadLetters = usePoll(
    () => admin.listDeadLetters({ filter: { subscription: name }, pageSize: DEAD_LETTER_PAGE, pageToken }),
    0,
    [name, pageToken],
  );
  const parked = usePoll(() => admin.listParkedKeys({ subscription: name }), 0, [name]);
  const mayManage = deadLetters.data !== undefined;
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [pending, setPending] = useState<Pending | undefined>(undefined);
  const [outcome, setOutcome] = useState<{ ok: boolean; text: string } | undefined>(undefined);

  const act = (question: string, run: () => Promise<string>) => {
    setOutcome(undefined);
    setPending({ question, run });
  };
  const confirm = async () => {
    const action = pending;
    setPending(undefined);
    if (!action) return;
    try {
      setOutcome({ ok: true, text: await action.run() });
    } catch (error) {
      setOutcome({ ok: false, text: reason(error) });
    }
    setSelected(new Set());
    setTokens([""]);
    deadLetters.reload();
    parked.reload();
    stats.reload();
  };
  const ids = [...selected];
  const total = stats.data ? Number(stats.data.deadLetters) : 0;
  const plural = (n: number) => `${count(n)} dead letter${n === 1 ? "" : "s"}`;

  return (
    <>
      <h1>
        Subscription {name}{" "}
        {topic && (
          <span class="muted">
            on <a href={link(`/topics/${encodeURIComponent(topic)}`)}>{topic}</a>
          </span>
        )}
      </h1>
      <ErrorBox error={sub.error} />
      <div class="grid2">
        <section>
          <h2>Policy</h2>
          {sub.data && (
            <dl>
              <dt>Ack deadline</dt>
              <dd>{age(durationSeconds(sub.data.ackDeadline))}</dd>
              <dt>Max delivery attempts</dt>
              <dd>{sub.data.maxDeliveryAttempts ?? "-"}</dd>
              <dt>Dead lettering</dt>
              <dd>{sub.data.deadLettering === false ? "off (retries for ever)" : "on"}</dd>
              <dt>Retry backoff</dt>
              <dd>
                {age(durationSeconds(sub.data.retryPolicy?.initialBackoff))} to{" "}
                {age(durationSeconds(sub.data.retryPolicy?.maxBackoff))}, x
                {sub.data.retryPolicy?.multiplier ?? "-"}, jitter {sub.data.retryPolicy?.jitter ?? "-"}
              </dd>
              <dt>Ordering</dt>
              <dd>{sub.data.ordering ? "by ordering key" : "none"}</dd>
              <dt>Filter</dt>
              <dd>{sub.data.filter ? <code>{sub.data.filter}</code> : "none (every event)"}</dd>
              <dt>Acked retention</dt>
              <dd>{age(durationSeconds(sub.data.ackedRetention))}</dd>
              <dt>Created</dt>
              <dd>{time(sub.data.createTime)}</dd>
            </dl>
          )}
        </section>
        <section>
          <h2>Numbers</h2>
          <ErrorBox error={stats.error} />
          {stats.data && (
            <dl data-testid="stats">
              <dt>Backlog</dt>
              <dd data-stat="backlog">{count(stats.data.backlog)}</dd>
              <dt>In flight</dt>
              <dd>{count(stats.data.inFlight)}</dd>
              <dt>Oldest pending</dt>
              <dd>{age(durationSeconds(stats.data.oldestUnackedAge))}</dd>
              <dt>Dead letters</dt>
              <dd data-stat="dead-letters">{count(stats.data.deadLetters)}</dd>
              <dt>Parked keys</dt>
              <dd>{count(stats.data.parkedKeys)}</dd>
              <dt>Cursor</dt>
              <dd>
                at position {count(stats.data.cursorPosition)}, {count(stats.data.cursorLag)} events behind
                the topic (oldest {age(durationSeconds(stats.data.cursorLagAge))})
              </dd>
            </dl>
          )}
          <h2>Consumers on this broker</h2>
          <ErrorBox error={consumers.error} />
          {consumers.data && consumers.data.consumers.length === 0 && (
            <p class="muted">none connected here</p>
          )}
          {consumers.data && consumers.data.consumers.length > 0 && (
            <table>
              <thead>
                <tr>
                  <th>Name</th>
                  <th>Connected</th>
                  <th class="n">In flight / window</th>
                </tr>
              </thead>
              <tbody>
                {consumers.data.consumers.map((c, i) => (
                  <tr key={`${c.name}@${c.connectTime?.seconds}:${i}`}>
                    <td>{c.name}</td>
                    <td>{time(c.connectTime)}</td>
                    <td class="n">
                      {c.inFlight} / {c.maxOutstandingMessages}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </section>
      </div>

      <h2>Dead letters</h2>
      {outcome && (
        <div class={outcome.ok ? "notice" : "error"} role="status">
          {outcome.text}
        </div>
      )}
      {pending && (
        <Confirm question={pending.question} onConfirm={confirm} onCancel={() => setPending(undefined)} />
      )}
      <ErrorBox error={deadLetters.error} />
      {mayManage && (
        <div class="bar">
          <button
            type="button"
            disabled={ids.length === 0}
            onClick={() =>
              act(`Redrive ${plural(ids.length)}?`, async () => {
                const r = await admin.redriveDeadLetters({ ids, filter: { subscription: name } });
                return `${plural(r.redriven)} redriven`;
              })
            }
          >
            Redrive selected ({ids.length})
          </button>
          <button
            type="button"
            class="danger"
            disabled={ids.length === 0}
            onClick={() =>
              act(`Purge ${plural(ids.length)}? They are deleted for good.`, async () => {
                const r = await admin.purgeDeadLetters({ ids, filter: { subscription: name } });
                return `${plural(r.purged)} purged`;
              })
            }
          >
            Purge selected ({ids.length})
          </button>
          <button
            type="button"
            disabled={total === 0}
            onClick={() =>
              act(`Redrive all ${plural(total)} of ${name}?`, async () => {
                const r = await admin.redriveDeadLetters({ filter: { subscription: name } });
                return `${plural(r.redriven)} redriven`;
              })
            }
          >
            Redrive all ({count(total)})
          </button>
          <button
            type="button"
            class="danger"
            disabled={total === 0}
            onClick={() =>
              act(`Purge all ${plural(total)} of ${name}? They are deleted for good.`, async () => {
                const r = await admin.purgeDeadLetters({ filter: { subscription: name } });
                return `${plural(r.purged)} purged`;
              })
            }
          >
            Purge all ({count(total)})
          </button>
        </div>
      )}
      {deadLetters.data && (
        <>
          <DeadLetterTable
            rows={deadLetters.data.deadLetters}
            selected={selected}
            onSelect={setSelected}
            registry={registry}
          />
          <div class="bar">
            <button
              type="button"
              disabled={tokens.length === 1}
              onClick={() => setTokens(tokens.slice(0, -1))}
            >
              Previous
            </button>
            <span>
              page {count(tokens.length)} of {count(Math.max(1, Math.ceil(total / DEAD_LETTER_PAGE)))}
            </span>
            <button
              type="button"
              disabled={!deadLetters.data.nextPageToken}
              onClick={() => setTokens([...tokens, deadLetters.data?.nextPageToken ?? ""])}
            >
              Next
            </button>
          </div>
        </>
      )}

      <h2>Parked keys</h2>
      <ErrorBox error={parked.error} />
      {parked.data && parked.data.parkedKeys.length === 0 && (
        <p class="muted">none{sub.data?.ordering ? "" : " (only an ordered subscription parks keys)"}</p>
      )}
      {parked.data && parked.data.parkedKeys.length > 0 && (
        <table>
          <thead>
            <tr>
              <th>Ordering key</th>
              <th>Held by dead letter</th>
              <th class="n">Events waiting</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {parked.data.parkedKeys.map((p) => (
              <tr key={p.orderingKey}>
                <td>{p.orderingKey}</td>
                <td>{p.deadLetterId}</td>
                <td class="n">{count(p.waiting)}</td>
                <td>
                  {mayManage && (
                    <button
                      type="button"
                      onClick={() =>
                        act(
                          `Release key ${p.orderingKey} (${count(p.waiting)} events waiting behind it)?`,
                          async () => {
                            const r = await admin.releaseParkedKeys({
                              subscription: name,
                              orderingKeys: [p.orderingKey],
                            });
                            return `${r.released} key released`;
                          },
                        )
                      }
                    >
                      Release
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {mayManage && <Seek name={name} onSeek={act} />}
    </>
  );
}

function DeadLetterTable(props: {
  rows: DeadLetter[];
  selected: Set<string>;
  onSelect: (s: Set<string>) => void;
  registry: ReturnType<typeof payloadRegistry>;
}) {
  if (props.rows.length === 0) return <p class="muted">no dead letters</p>;
  const toggle = (id: string) => {
    const next = new Set(props.selected);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    props.onSelect(next);
  };
  return (
    <table data-testid="dead-letters">
      <thead>
        <tr>
          <th>
            <input
              type="checkbox"
              aria-label="select all on this page"
              checked={props.rows.every((r) => props.selected.has(r.id))}
              onChange={(e) =>
                props.onSelect(
                  (e.target as HTMLInputElement).checked ? new Set(props.rows.map((r) => r.id)) : new Set(),
                )
              }
            />
          </th>
          <th>Event</th>
          <th class="n">Attempts</th>
          <th>Last error</th>
          <th>Failed</th>
          <th>Payload</th>
        </tr>
      </thead>
      <tbody>
        {props.rows.map((dl) => (
          <tr key={dl.id} data-dead-letter={dl.id}>
            <td>
              <input
                type="checkbox"
                aria-label={`select dead letter ${dl.id}`}
                checked={props.selected.has(dl.id)}
                onChange={() => toggle(dl.id)}
              />
            </td>
            <td>
              <EventSummary event={dl.event} />
            </td>
            <td class="n">{dl.attempts}</td>
            <td>
              {dl.reason === 2 ? "rejected: " : ""}
              {dl.lastError}
            </td>
            <td>
              <div>first {time(dl.firstFailureTime)}</div>
              <div>dead-lettered {time(dl.deadLetterTime)}</div>
            </td>
            <td>
              <Payload event={dl.event} registry={props.registry} />
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Seek({ name, onSeek }: { name: string; onSeek: (q: string, run: () => Promise<string>) => void }) {
  const [kind, setKind] = useState<"now" | "earliest" | "time" | "position">("now");
  const [value, setValue] = useState("");
  const start = (): MessageInitShape<typeof StartPositionSchema> => {
    switch (kind) {
      case "now":
        return { at: { case: "now", value: {} } };
      case "earliest":
        return { at: { case: "earliest", value: {} } };
      case "time":
        return { at: { case: "time", value: timestampFromMs(Date.parse(value) || 0) } };
      case "position":
        return { at: { case: "position", value: BigInt(/^[0-9]+$/.test(value) ? value : "0") } };
    }
  };
  return (
    <>
      <h2>Seek</h2>
      <p class="muted">
        Moves the cursor: events before the position count as acked, those after as pending; deliveries in
        flight end. Dead letters and parked keys stay.
      </p>
      <div class="bar">
        <select
          aria-label="seek to"
          value={kind}
          onChange={(e) => setKind((e.target as HTMLSelectElement).value as never)}
        >
          <option value="now">now (skip the backlog)</option>
          <option value="earliest">the earliest retained event</option>
          <option value="time">a time</option>
          <option value="position">a position</option>
        </select>
        {(kind === "time" || kind === "position") && (
          <input
            aria-label="seek value"
            placeholder={kind === "time" ? "2026-12-01T09:30:00Z" : "position"}
            value={value}
            onInput={(e) => setValue((e.target as HTMLInputElement).value)}
          />
        )}
        <button
          type="button"
          onClick={() =>
            onSeek(
              `Seek ${name} to ${kind === "time" || kind === "position" ? `${kind} ${value}` : kind}?`,
              async () => {
                const r = await admin.seekSubscription({ subscription: name, to: start() });
                return `cursor at position ${count(r.position)}; ${count(r.droppedDeliveries)} deliveries dropped`;
              },
            )
          }
        >
          Seek
        </button>
      </div>
    </>
  );
}
