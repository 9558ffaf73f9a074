// What every system carries: which round an event belongs to, its index in the round and when it was
// handed to the publisher (performance.now(): producer and consumers share this process), padded to
// 200 bytes. Binary for the systems that carry bytes, JSON of about the same size for pg-boss.

export const PAYLOAD_BYTES = 200;

export interface Stamp {
  round: number;
  index: number;
  sentAt: number;
}

export function encodeStamp({ round, index, sentAt }: Stamp): Buffer {
  const buf = Buffer.alloc(PAYLOAD_BYTES, 0x78);
  buf.writeUInt32LE(round, 0);
  buf.writeUInt32LE(index, 4);
  buf.writeDoubleLE(sentAt, 8);
  return buf;
}

/** An event that is not 200 bytes decodes to round -1, which the accounting counts as foreign. */
export function decodeStamp(bytes: Uint8Array): Stamp {
  if (bytes.byteLength !== PAYLOAD_BYTES) return { round: -1, index: -1, sentAt: 0 };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { round: view.getUint32(0, true), index: view.getUint32(4, true), sentAt: view.getFloat64(8, true) };
}

/** pg-boss job data is JSON: the same three fields and padding, about 200 bytes in all. */
export interface JsonStamp {
  r: number;
  i: number;
  t: number;
  p: string;
}
const JSON_PAD = "x".repeat(
  PAYLOAD_BYTES - JSON.stringify({ r: 1, i: 100000, t: 12345.678901, p: "" }).length,
);

export const jsonStamp = ({ round, index, sentAt }: Stamp): JsonStamp => ({
  r: round,
  i: index,
  t: sentAt,
  p: JSON_PAD,
});

export const fromJsonStamp = (data: JsonStamp): Stamp => ({ round: data.r, index: data.i, sentAt: data.t });
