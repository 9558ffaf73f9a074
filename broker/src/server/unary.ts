// Adapts an async function to a grpc-js unary handler, with errors mapped in status.ts and every
// finished call reported (method and status code) for the metrics.
import { type ServerUnaryCall, type sendUnaryData, status } from "@grpc/grpc-js";
import { invalidArgument } from "../delivery/errors.ts";
import { RefusedRequest } from "./request-check.ts";
import { type ErrorLogger, toServiceError } from "./status.ts";

/** Told about every finished call: the method's name and the status code's name. */
export type RequestObserver = (method: string, code: string) => void;

export function unary<Req, Res>(
  method: string,
  log: ErrorLogger,
  handle: (request: Req, call: ServerUnaryCall<Req, Res>) => Promise<Res>,
  observe: RequestObserver = () => {},
): (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void {
  return (call, callback) => {
    const request: Req | RefusedRequest = call.request;
    const handled =
      request instanceof RefusedRequest
        ? Promise.reject(invalidArgument(request.problem))
        : handle(request, call);
    handled.then(
      (response) => {
        observe(method, "OK");
        callback(null, response);
      },
      (error: unknown) => {
        const serviceError = toServiceError(error, log, method);
        observe(method, status[serviceError.code ?? status.UNKNOWN] ?? "UNKNOWN");
        callback(serviceError);
      },
    );
  };
}
