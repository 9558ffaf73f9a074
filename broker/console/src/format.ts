// How the console writes numbers, ages, times and payload bytes. Pure functions, unit-tested.
import type { Duration, Timestamp } from "@bufbuild/protobuf/wkt";

/** 1234567 -> "1,234,567" (bigint or number). */
export function count(n: number | bigint): string {
  return BigInt(n)
    .toString()
    .replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** Seconds as the two largest units: "0 s", "45 s", "3 min 20 s", "2 h 5 min", "3 d 4 h". */
export function age(totalSeconds: number): string {
  const s = Math.max(0, Math.floor(totalSeconds));
  if (s < 60) return `${s} s`;
  const units: [string, number][] = [
    ["d", 86_400],
    ["h", 3_600],
    ["min", 60],
    ["s", 1],
  ];
  const first = units.findIndex(([, size]) => s >= size);
  const [bigName, bigSize] = units[first] as [string, number];
  const [smallName, smallSize] = units[first + 1] as [string, number];
  const big = Math.floor(s / bigSize);
  const small = Math.floor((s % bigSize) / smallSize);
  return small > 0 ? `${big} ${bigName} ${small} ${smallName}` : `${big} ${bigName}`;
}

export function durationSeconds(d: Duration | undefined): number {
  return d ? Number(d.seconds) + d.nanos / 1e9 : 0;
}

export function timestampDate(t: Timestamp | undefined): Date | undefined {
  return t ? new Date(Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6)) : undefined;
}

/** A time as the operator reads it: ISO 8601 in UTC to the second. */
export function time(t: Timestamp | Date | undefined): string {
  const date = t instanceof Date ? t : timestampDate(t);
  return date ? `${date.toISOString().slice(0, 19).replace("T", " ")} UTC` : "-";
}

/** Events per second: "0/s", "0.4/s", "12/s", "1.2k/s". */
export function rate(perSecond: number): string {
  if (!Number.isFinite(perSecond) || perSecond <= 0) return "0/s";
  if (perSecond < 10) return `${Number(perSecond.toFixed(1))}/s`;
  if (perSecond < 1000) return `${Math.round(perSecond)}/s`;
  return `${Number((perSecond / 1000).toFixed(1))}k/s`;
}

/** Payload bytes for a human: hex, 16 bytes a line, with the printable ASCII beside it. */
export function hexDump(bytes: Uint8Array, limit = 4096): string {
  const lines: string[] = [];
  const shown = bytes.subarray(0, limit);
  for (let offset = 0; offset < shown.length; offset += 16) {
    const row = shown.subarray(offset, offset + 16);
    const hex = [...row].map((b) => b.toString(16).padStart(2, "0")).join(" ");
    const text = [...row].map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : ".")).join("");
    lines.push(`${offset.toString(16).padStart(6, "0")}  ${hex.padEnd(47)}  ${text}`);
  }
  if (bytes.length > limit) lines.push(`... ${count(bytes.length - limit)} more bytes`);
  return lines.join("\n");
}
