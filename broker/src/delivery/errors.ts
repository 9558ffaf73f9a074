// The one error type the broker raises on purpose. The server maps `code` to a gRPC status in
// server/status.ts; `message` is written for the person who made the request, and `cause` is
// only logged, never sent (it may hold SQL text).
export type ErrorCode =
  | "invalid_argument"
  | "not_found"
  | "already_exists"
  | "failed_precondition"
  | "resource_exhausted"
  | "unavailable"
  | "unauthenticated"
  | "permission_denied"
  | "internal";

export class MeshError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "MeshError";
    this.code = code;
  }
}

export const invalidArgument = (message: string) => new MeshError("invalid_argument", message);
export const notFound = (message: string) => new MeshError("not_found", message);
