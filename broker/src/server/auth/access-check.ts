// The access decisions every call passes, whichever protocol carries it: the gRPC interceptor
// (interceptor.ts) and the console's Connect gateway (../console/connect-gateway.ts) both call
// these, so a permission is checked in one place.
import { MeshError } from "../../delivery/errors.ts";
import type { Identity } from "../../security/authenticator.ts";
import { allows, mayPublishAs, type Principal } from "../../security/grants.ts";
import type { Need, RpcAccess } from "./rpc-access.ts";

/** Refuses the request unless the principal holds every need (and may publish as its sources). */
export function authorize(
  principal: Principal,
  access: RpcAccess & { kind: "checked" },
  needs: Need[],
  message: unknown,
) {
  authorizeAll(principal, needs);
  for (const source of access.sources?.(message as never) ?? []) {
    if (!mayPublishAs(principal, source)) {
      throw new MeshError(
        "permission_denied",
        `permission denied: ${principal.name} may not publish events with source ${JSON.stringify(source)}`,
      );
    }
  }
}

export function authorizeAll(principal: Principal, needs: Need[]) {
  for (const need of needs) {
    if (!allows(principal, need.permission, need.name)) {
      throw new MeshError(
        "permission_denied",
        `permission denied: ${principal.name} may not ${need.permission} ${need.kind} ${JSON.stringify(need.name)}`,
      );
    }
  }
}

/** The rule for a method with none (never served, but never open either): admins only. */
export const DENY_UNKNOWN: RpcAccess = {
  kind: "checked",
  needs: () => [{ permission: "admin", kind: "principal", name: "*" }],
  audited: false,
};

/** Which names the caller may read (lists show no more); everything with authentication off. */
export function readerFor(identity: Identity | undefined): (name: string) => boolean {
  if (!identity) return () => true;
  return (name) => allows(identity.principal, "read", name);
}
