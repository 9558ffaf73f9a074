// What the interceptor learned about a call's caller, for the handlers whose answer depends on it
// (lists show only what the caller may read). Keyed by the call's metadata object, which grpc-js
// hands from the interceptor to the handler: nothing a client sends can set it.
import type { Metadata } from "@grpc/grpc-js";

const readers = new WeakMap<Metadata, (name: string) => boolean>();

export function setReader(metadata: Metadata, mayRead: (name: string) => boolean): void {
  readers.set(metadata, mayRead);
}

/** Which names the caller may read; none when the interceptor did not say (it always does). */
export function readableBy(metadata: Metadata): (name: string) => boolean {
  return readers.get(metadata) ?? (() => false);
}
