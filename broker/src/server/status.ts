// The one place where broker errors become gRPC statuses. Only a MeshError's own message reaches a
// client; anything else (a Postgres error holding SQL text, a bug) is logged with a reference and
// the client gets INTERNAL with that reference only.
import { randomBytes } from "node:crypto";
import { Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { type ErrorCode, MeshError } from "../delivery/errors.ts";

const CODES: Record<ErrorCode, status> = {
  invalid_argument: status.INVALID_ARGUMENT,
  not_found: status.NOT_FOUND,
  already_exists: status.ALREADY_EXISTS,
  failed_precondition: status.FAILED_PRECONDITION,
  resource_exhausted: status.RESOURCE_EXHAUSTED,
  unavailable: status.UNAVAILABLE,
  unauthenticated: status.UNAUTHENTICATED,
  permission_denied: status.PERMISSION_DENIED,
  internal: status.INTERNAL,
};

export type ErrorLogger = (message: string, error: unknown) => void;

export function toServiceError(error: unknown, log: ErrorLogger, method: string): Partial<ServiceError> {
  if (error instanceof MeshError && error.code !== "internal") {
    return { code: CODES[error.code], details: error.message, metadata: new Metadata() };
  }
  const reference = randomBytes(4).toString("hex");
  log(`${method} failed (ref ${reference})`, error);
  return {
    code: status.INTERNAL,
    details: `internal error in the broker (ref ${reference}); the broker's log has the details`,
    metadata: new Metadata(),
  };
}
