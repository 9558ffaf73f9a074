// Every topic and subscription the caller may read, with their numbers, live: one page of each is
// polled every 2 s (ListTopicSummaries/ListSubscriptionSummaries read the broker's last gauge
// refresh from memory, so an open console costs the database nothing).
import { useMemo, useState } from "preact/hooks";
import { admin } from "../api.ts";
import { age, count, durationSeconds, rate, time, timestampDate } from "../format.ts";
import { RateTracker, ValueHistory } from "../rates.ts";
import { ErrorBox, link, Sparkline, usePoll } from "../ui.tsx";

const PAGE = 50;
const POLL_MS = 2000;

export function OverviewPage() {
  const [search, setSearch] = useState("");
  const [topicPage, setTopicPage] = useState(0);
  const [subPage, setSubPage] = useState(0);
  const rates = useMemo(() => new RateTracker(), []);
  const backlogs = useMemo(() => new ValueHistory(), []);
  const { data, error } = usePoll(
    async () => {
      const [topics, subscriptions] = await Promise.all([
        admin.listTopicSummaries({
          search,
          pageSize: PAGE,
          pageToken: topicPage ? String(topicPage * PAGE) : "",
        }),
        admin.listSubscriptionSummaries({
          search,
          pageSize: PAGE,
          pageToken: subPage ? String(subPage * PAGE) : "",
        }),
      ]);
      const at = timestampDate(subscriptions.refreshTime)?.getTime() ?? Date.now();
      for (const t of topics.topics) rates.record(`p:${t.name}`, { at, value: Number(t.published) });
      for (const s of subscriptions.subscriptions) {
        rates.record(`d:${s.name}`, { at, value: Number(s.delivered) });
        rates.record(`a:${s.name}`, { at, value: Number(s.acked) });
        backlogs.record(s.name, at, Number(s.backlog));
      }
      return { topics, subscriptions };
    },
    POLL_MS,
    [search, topicPage, subPage],
  );
  return (
    <>
      <h1>Overview</h1>
      <div class="bar">
        <input
          type="search"
          aria-label="search"
          placeholder="search topics and subscriptions"
          value={search}
          onInput={(e) => {
            setSearch((e.target as HTMLInputElement).value);
            setTopicPage(0);
            setSubPage(0);
          }}
        />
        {data && (
          <span class="muted">numbers as of {time(data.subscriptions.refreshTime)}, updated every 2 s</span>
        )}
      </div>
      <ErrorBox error={error} />
      <h2>
        Subscriptions <span class="muted">({data ? count(data.subscriptions.totalSize) : "..."})</span>
      </h2>
      <table data-testid="subscriptions">
        <thead>
          <tr>
            <th>Subscription</th>
            <th>Topic</th>
            <th class="n">Backlog</th>
            <th>Backlog trend</th>
            <th class="n">In flight</th>
            <th class="n">Oldest pending</th>
            <th class="n">Dead letters</th>
            <th class="n">Delivery rate</th>
            <th class="n">Ack rate</th>
            <th>Delivery trend</th>
          </tr>
        </thead>
        <tbody>
          {data?.subscriptions.subscriptions.map((s) => (
            <tr key={s.name} class={s.deadLetters > 0n ? "warn" : ""} data-subscription={s.name}>
              <td>
                <a href={link(`/subscriptions/${encodeURIComponent(s.name)}`)}>{s.name}</a>
              </td>
              <td>
                <a href={link(`/topics/${encodeURIComponent(s.topic)}`)}>{s.topic}</a>
              </td>
              <td class="n" data-col="backlog">
                {count(s.backlog)}
              </td>
              <td>
                <Sparkline values={backlogs.history(s.name)} label={`backlog of ${s.name}`} />
              </td>
              <td class="n">{count(s.inFlight)}</td>
              <td class="n">{age(durationSeconds(s.oldestUnackedAge))}</td>
              <td class="n" data-col="dead-letters">
                {count(s.deadLetters)}
              </td>
              <td class="n" data-col="delivery-rate">
                {rate(rates.rate(`d:${s.name}`))}
              </td>
              <td class="n">{rate(rates.rate(`a:${s.name}`))}</td>
              <td>
                <Sparkline values={rates.history(`d:${s.name}`)} label={`delivery rate of ${s.name}`} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <Pager
        page={subPage}
        total={data?.subscriptions.totalSize ?? 0}
        onPage={setSubPage}
        what="subscriptions"
      />
      <h2>
        Topics <span class="muted">({data ? count(data.topics.totalSize) : "..."})</span>
      </h2>
      <table data-testid="topics">
        <thead>
          <tr>
            <th>Topic</th>
            <th class="n">Subscriptions</th>
            <th class="n">Retention</th>
            <th class="n">Publish rate</th>
            <th>Publish trend</th>
          </tr>
        </thead>
        <tbody>
          {data?.topics.topics.map((t) => (
            <tr key={t.name} data-topic={t.name}>
              <td>
                <a href={link(`/topics/${encodeURIComponent(t.name)}`)}>{t.name}</a>
              </td>
              <td class="n">{t.subscriptions}</td>
              <td class="n">{age(durationSeconds(t.retention))}</td>
              <td class="n" data-col="publish-rate">
                {rate(rates.rate(`p:${t.name}`))}
              </td>
              <td>
                <Sparkline values={rates.history(`p:${t.name}`)} label={`publish rate of ${t.name}`} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <Pager page={topicPage} total={data?.topics.totalSize ?? 0} onPage={setTopicPage} what="topics" />
      <p class="muted">
        Rates count the traffic through this broker (its own counters); backlog, in flight, oldest pending and
        dead letters are the whole mesh's.
      </p>
    </>
  );
}

function Pager(props: { page: number; total: number; onPage: (page: number) => void; what: string }) {
  const pages = Math.max(1, Math.ceil(props.total / PAGE));
  if (pages <= 1) return null;
  return (
    <nav class="bar" aria-label={`${props.what} pages`}>
      <button type="button" disabled={props.page === 0} onClick={() => props.onPage(props.page - 1)}>
        Previous
      </button>
      <span>
        page {props.page + 1} of {pages}
      </span>
      <button type="button" disabled={props.page + 1 >= pages} onClick={() => props.onPage(props.page + 1)}>
        Next
      </button>
    </nav>
  );
}
