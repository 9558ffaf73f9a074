// Adapts an async function to a grpc-js unary handler, with errors mapped in status.ts.
import type { ServerUnaryCall, sendUnaryData } from "@grpc/grpc-js";
import { type ErrorLogger, toServiceError } from "./status.ts";

export function unary<Req, Res>(
  method: string,
  log: ErrorLogger,
  handle: (request: Req) => Promise<Res>,
): (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void {
  return (call, callback) => {
    handle(call.request).then(
      (response) => callback(null, response),
      (error: unknown) => callback(toServiceError(error, log, method)),
    );
  };
}
