// Small pieces every page uses: polling, errors, sparklines, confirmations.
import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { reason } from "./api.ts";

/**
 * Runs `load` now and every `everyMs` while the page is shown (never two at once). A failure is
 * kept and shown, and polling goes on, so the page recovers by itself once the broker is back.
 */
export function usePoll<T>(load: () => Promise<T>, everyMs: number, deps: unknown[]) {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  const [tick, setTick] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = async () => {
      try {
        const value = await loadRef.current();
        if (stopped) return;
        setData(value);
        setError(undefined);
      } catch (e) {
        if (!stopped) setError(reason(e));
      }
      if (!stopped && everyMs > 0) timer = setTimeout(run, everyMs);
    };
    void run();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [...deps, tick]);
  return { data, error, reload: () => setTick((t) => t + 1) };
}

/**
 * A failure, in the broker's words. A permission the token lacks is a fact to state, not an alarm;
 * the broker being unreachable or refusing otherwise is.
 */
export function ErrorBox({ error }: { error: string | undefined }) {
  if (!error) return null;
  if (error.startsWith("permission denied")) return <div class="notice">{error}</div>;
  return (
    <div class="error" role="alert">
      {error}
    </div>
  );
}

export function Sparkline({ values, label }: { values: number[]; label: string }) {
  const width = 80;
  const height = 18;
  if (values.length < 2) return <svg class="spark" width={width} height={height} aria-label={label} />;
  const max = Math.max(...values, 1);
  const step = width / (values.length - 1);
  const points = values.map(
    (v, i) => `${(i * step).toFixed(1)},${(height - 1 - (v / max) * (height - 2)).toFixed(1)}`,
  );
  return (
    <svg class="spark" width={width} height={height} aria-label={label}>
      <polyline points={points.join(" ")} fill="none" stroke="#2457c5" stroke-width="1.5" />
    </svg>
  );
}

/** An action that asks first, saying what it will do ("Redrive 3 dead letters?"). */
export function Confirm(props: {
  question: string;
  onConfirm: () => void;
  onCancel: () => void;
  children?: ComponentChildren;
}) {
  return (
    <div class="notice" role="dialog">
      <strong>{props.question}</strong> {props.children}
      <div class="bar">
        <button type="button" class="primary" onClick={props.onConfirm}>
          Confirm
        </button>
        <button type="button" onClick={props.onCancel}>
          Cancel
        </button>
      </div>
    </div>
  );
}

export function link(path: string): string {
  return `#${path}`;
}
