// The broker address the CLI talks to: `-a host` alone means the default port.
export const DEFAULT_PORT = 50051;

/** "host" -> "host:50051", "::1" -> "[::1]:50051"; "host:1234", "[::1]:1234" and "unix:/path" stay. */
export function withDefaultPort(address: string): string {
  if (address.startsWith("unix:")) return address;
  if (address.startsWith("[")) return /\]:\d+$/.test(address) ? address : `${address}:${DEFAULT_PORT}`;
  const colons = address.split(":").length - 1;
  if (colons === 0) return `${address}:${DEFAULT_PORT}`;
  if (colons === 1) return address;
  // More than one colon without brackets: a bare IPv6 address.
  return `[${address}]:${DEFAULT_PORT}`;
}
