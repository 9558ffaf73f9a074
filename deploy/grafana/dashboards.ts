// Generates the Grafana dashboards (dashboards/*.json) from one list of panels, so that every panel
// says what question it answers and the Prometheus test can run every query.
//   node --import tsx deploy/grafana/dashboards.ts        (npm run dashboards)
import { writeFileSync } from "node:fs";

export interface PanelSpec {
  title: string;
  /** The question the panel answers, shown as its description. */
  answers: string;
  unit: string;
  kind?: "timeseries" | "stat";
  targets: { expr: string; legend: string }[];
}

export interface DashboardSpec {
  uid: string;
  title: string;
  description: string;
  /** Adds a `subscription` template variable; panels filter with {subscription=~"$subscription"}. */
  perSubscription?: boolean;
  panels: PanelSpec[];
}

const R = "$__rate_interval";
// The gauges read from the database (backlog, in flight, oldest age, dead letters) are mesh-wide:
// every broker reports the same value, so panels aggregate them with max, never sum.
const S = 'subscription=~"$subscription"';

export const dashboards: DashboardSpec[] = [
  {
    uid: "pgmesh-overview",
    title: "pgmesh / Overview",
    description: "The whole mesh: traffic, backlog, delay, dead letters and consumers.",
    panels: [
      {
        title: "Published events / s by topic",
        answers: "How much is being published, and to which topics?",
        unit: "ops",
        targets: [
          { expr: `sum by (topic) (rate(pgmesh_events_published_total[${R}]))`, legend: "{{topic}}" },
        ],
      },
      {
        title: "Acked events / s by subscription",
        answers: "How fast are consumers getting through their work?",
        unit: "ops",
        targets: [
          {
            expr: `sum by (subscription) (rate(pgmesh_settles_total{result="acked"}[${R}]))`,
            legend: "{{subscription}}",
          },
        ],
      },
      {
        title: "Backlog by subscription",
        answers: "How many events wait to be delivered (including retries waiting out their backoff)?",
        unit: "short",
        targets: [{ expr: "max by (subscription) (pgmesh_backlog)", legend: "{{subscription}}" }],
      },
      {
        title: "Oldest unacked event age",
        answers: "How far behind is the slowest subscription?",
        unit: "s",
        targets: [
          { expr: "max by (subscription) (pgmesh_oldest_unacked_age_seconds)", legend: "{{subscription}}" },
        ],
      },
      {
        title: "Dead letters waiting",
        answers: "How many events need a person (inspect, redrive or purge)?",
        unit: "short",
        kind: "stat",
        targets: [{ expr: "max by (subscription) (pgmesh_dead_letters)", legend: "{{subscription}}" }],
      },
      {
        title: "Dead-lettered / s by reason",
        answers: "Are events failing for good right now, and why (max attempts or rejected)?",
        unit: "ops",
        targets: [
          {
            expr: `sum by (subscription, reason) (rate(pgmesh_dead_lettered_total[${R}]))`,
            legend: "{{subscription}} {{reason}}",
          },
        ],
      },
      {
        title: "Publish latency",
        answers: "How long does a Publish take to commit (p50, p99)?",
        unit: "s",
        targets: [
          {
            expr: `histogram_quantile(0.5, sum by (le) (rate(pgmesh_publish_duration_seconds_bucket[${R}])))`,
            legend: "p50",
          },
          {
            expr: `histogram_quantile(0.99, sum by (le) (rate(pgmesh_publish_duration_seconds_bucket[${R}])))`,
            legend: "p99",
          },
        ],
      },
      {
        title: "Publish-to-ack latency",
        answers: "How long from publish until a consumer has handled the event (p50, p99)?",
        unit: "s",
        targets: [
          {
            expr: `histogram_quantile(0.5, sum by (le) (rate(pgmesh_publish_to_ack_seconds_bucket[${R}])))`,
            legend: "p50",
          },
          {
            expr: `histogram_quantile(0.99, sum by (le) (rate(pgmesh_publish_to_ack_seconds_bucket[${R}])))`,
            legend: "p99",
          },
        ],
      },
      {
        title: "Connected consumers",
        answers: "Which subscriptions have consumers attached right now?",
        unit: "short",
        targets: [{ expr: "sum by (subscription) (pgmesh_consumers_connected)", legend: "{{subscription}}" }],
      },
    ],
  },
  {
    uid: "pgmesh-subscription",
    title: "pgmesh / Subscription",
    description: "One subscription in detail: pick it at the top.",
    perSubscription: true,
    panels: [
      {
        title: "Deliveries and redeliveries / s",
        answers:
          "How much is delivered, how much of it is a retry, and how much a publish handed straight to an idle stream?",
        unit: "ops",
        targets: [
          { expr: `sum(rate(pgmesh_deliveries_total{${S}}[${R}]))`, legend: "deliveries" },
          { expr: `sum(rate(pgmesh_redeliveries_total{${S}}[${R}]))`, legend: "redeliveries" },
          { expr: `sum(rate(pgmesh_handed_off_total{${S}}[${R}]))`, legend: "handed off at publish" },
        ],
      },
      {
        title: "Settles / s by result",
        answers: "Do consumers ack, nack, reject, extend, or settle too late (stale)?",
        unit: "ops",
        targets: [{ expr: `sum by (result) (rate(pgmesh_settles_total{${S}}[${R}]))`, legend: "{{result}}" }],
      },
      {
        title: "Backlog and in flight",
        answers: "How much waits, and how much is being worked on?",
        unit: "short",
        targets: [
          { expr: `max by (subscription) (pgmesh_backlog{${S}})`, legend: "backlog" },
          { expr: `max by (subscription) (pgmesh_in_flight{${S}})`, legend: "in flight" },
        ],
      },
      {
        title: "Cursor lag",
        answers:
          "How far behind its topic is this subscription's cursor: events not yet leased, and the age of the oldest?",
        unit: "short",
        targets: [
          { expr: `max by (subscription) (pgmesh_cursor_lag{${S}})`, legend: "events" },
          { expr: `max by (subscription) (pgmesh_cursor_lag_age_seconds{${S}})`, legend: "oldest (s)" },
        ],
      },
      {
        title: "Oldest unacked event age",
        answers: "How old is the oldest event not yet acked?",
        unit: "s",
        targets: [{ expr: `max(pgmesh_oldest_unacked_age_seconds{${S}})`, legend: "age" }],
      },
      {
        title: "Dead letters",
        answers: "How many events are in the dead-letter table?",
        unit: "short",
        kind: "stat",
        targets: [{ expr: `max by (subscription) (pgmesh_dead_letters{${S}})`, legend: "dead letters" }],
      },
      {
        title: "Publish-to-ack latency",
        answers: "How long from publish until this subscription's consumers ack (p50, p90, p99)?",
        unit: "s",
        targets: [0.5, 0.9, 0.99].map((q) => ({
          expr: `histogram_quantile(${q}, sum by (le) (rate(pgmesh_publish_to_ack_seconds_bucket{${S}}[${R}])))`,
          legend: `p${q * 100}`,
        })),
      },
      {
        title: "Fetch latency",
        answers:
          "Is fetching from this subscription's queue slowing (p50, p99 of one fetch: stale statistics, or a backlog outgrowing memory)?",
        unit: "s",
        targets: [0.5, 0.99].map((q) => ({
          expr: `histogram_quantile(${q}, sum by (le) (rate(pgmesh_fetch_duration_seconds_bucket{${S}}[${R}])))`,
          legend: `p${q * 100}`,
        })),
      },
      {
        title: "Connected consumers",
        answers: "How many streams consume this subscription?",
        unit: "short",
        kind: "stat",
        targets: [{ expr: `sum(pgmesh_consumers_connected{${S}})`, legend: "consumers" }],
      },
    ],
  },
  {
    uid: "pgmesh-broker",
    title: "pgmesh / Broker internals",
    description: "The broker processes: up, gRPC, Node.js runtime and Postgres connections.",
    panels: [
      {
        title: "Brokers up",
        answers: "Is every broker being scraped?",
        unit: "short",
        kind: "stat",
        targets: [{ expr: 'sum(up{job="pgmesh"})', legend: "up" }],
      },
      {
        title: "gRPC calls / s by method",
        answers: "What is the broker being asked to do?",
        unit: "ops",
        targets: [{ expr: `sum by (method) (rate(pgmesh_grpc_requests_total[${R}]))`, legend: "{{method}}" }],
      },
      {
        title: "gRPC errors / s by method and code",
        answers: "Which calls fail, with which status?",
        unit: "ops",
        targets: [
          {
            expr: `sum by (method, code) (rate(pgmesh_grpc_requests_total{code!="OK"}[${R}]))`,
            legend: "{{method}} {{code}}",
          },
        ],
      },
      {
        title: "Event loop lag (p99)",
        answers: "Is a broker's Node.js event loop keeping up?",
        unit: "s",
        targets: [{ expr: "max by (instance) (nodejs_eventloop_lag_p99_seconds)", legend: "{{instance}}" }],
      },
      {
        title: "CPU",
        answers: "How busy is each broker process?",
        unit: "percentunit",
        targets: [
          {
            expr: `sum by (instance) (rate(process_cpu_seconds_total{job="pgmesh"}[${R}]))`,
            legend: "{{instance}}",
          },
        ],
      },
      {
        title: "Memory (resident)",
        answers: "How much memory does each broker use?",
        unit: "bytes",
        targets: [
          { expr: 'sum by (instance) (process_resident_memory_bytes{job="pgmesh"})', legend: "{{instance}}" },
        ],
      },
      {
        title: "Postgres connections by pool and state",
        answers: "Are the broker's pools near their limits, or idle in transaction?",
        unit: "short",
        targets: [
          {
            expr: "max by (application, state) (pgmesh_postgres_connections)",
            legend: "{{application}} {{state}}",
          },
        ],
      },
      {
        title: "Gauge refresh time",
        answers: "How long do the database-backed gauges take to read (a proxy for queue table health)?",
        unit: "s",
        targets: [{ expr: "max by (instance) (pgmesh_gauges_refresh_seconds)", legend: "{{instance}}" }],
      },
    ],
  },
];

function panelJson(panel: PanelSpec, index: number) {
  const width = 12;
  return {
    id: index + 1,
    type: panel.kind ?? "timeseries",
    title: panel.title,
    description: panel.answers,
    datasource: { type: "prometheus", uid: "prometheus" },
    gridPos: { h: 8, w: width, x: (index % 2) * width, y: Math.floor(index / 2) * 8 },
    fieldConfig: { defaults: { unit: panel.unit }, overrides: [] },
    options: {},
    targets: panel.targets.map((t, i) => ({
      refId: String.fromCharCode(65 + i),
      datasource: { type: "prometheus", uid: "prometheus" },
      expr: t.expr,
      legendFormat: t.legend,
    })),
  };
}

export function dashboardJson(spec: DashboardSpec) {
  return {
    uid: spec.uid,
    title: spec.title,
    description: spec.description,
    tags: ["pgmesh"],
    timezone: "browser",
    schemaVersion: 39,
    version: 1,
    refresh: "10s",
    time: { from: "now-1h", to: "now" },
    templating: {
      list: spec.perSubscription
        ? [
            {
              name: "subscription",
              label: "Subscription",
              type: "query",
              datasource: { type: "prometheus", uid: "prometheus" },
              query: { query: "label_values(pgmesh_backlog, subscription)", refId: "subscription" },
              definition: "label_values(pgmesh_backlog, subscription)",
              refresh: 2,
              includeAll: true,
              multi: true,
              current: { text: "All", value: "$__all" },
            },
          ]
        : [],
    },
    panels: spec.panels.map(panelJson),
  };
}

export const dashboardFile = (spec: DashboardSpec) => new URL(`dashboards/${spec.uid}.json`, import.meta.url);

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const spec of dashboards) {
    writeFileSync(dashboardFile(spec), `${JSON.stringify(dashboardJson(spec), null, 2)}\n`);
  }
}
