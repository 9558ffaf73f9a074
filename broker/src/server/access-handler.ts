// The access-control RPCs of pgmesh.v1.AdminService (principals, tokens, audit log) on top of
// security/access-admin.ts. Who may call them is decided in auth/, like every other RPC.
import type { AdminServiceServer } from "@pgmesh/proto/pgmesh/v1/admin";
import type { AccessAdmin } from "../security/access-admin.ts";
import { grantToString } from "../security/grants.ts";
import type { PrincipalRecord, TokenInfo } from "../security/ports.ts";
import { wholeSeconds } from "./convert.ts";
import type { ErrorLogger } from "./status.ts";
import { type RequestObserver, unary } from "./unary.ts";

export type AccessMethod =
  | "createPrincipal"
  | "listPrincipals"
  | "updatePrincipal"
  | "deletePrincipal"
  | "createToken"
  | "listTokens"
  | "revokeToken"
  | "listAuditLog";
export type AccessHandlers = Pick<AdminServiceServer, AccessMethod>;

export function accessHandlers(
  access: AccessAdmin,
  log: ErrorLogger,
  observe: RequestObserver,
): AccessHandlers {
  const rpc = <Req, Res>(method: string, handle: (request: Req) => Promise<Res>) =>
    unary(method, log, handle, observe);
  return {
    createPrincipal: rpc("CreatePrincipal", async (req) => {
      const p = req.principal;
      return {
        principal: principalToWire(
          await access.createPrincipal(p?.name ?? "", p?.grants ?? [], p?.sources ?? []),
        ),
      };
    }),
    listPrincipals: rpc("ListPrincipals", async () => ({
      principals: (await access.listPrincipals()).map(principalToWire),
    })),
    updatePrincipal: rpc("UpdatePrincipal", async (req) => {
      const p = req.principal;
      return {
        principal: principalToWire(
          await access.updatePrincipal(p?.name ?? "", p?.grants ?? [], p?.sources ?? []),
        ),
      };
    }),
    deletePrincipal: rpc("DeletePrincipal", async (req) => {
      await access.deletePrincipal(req.name);
      return {};
    }),
    createToken: rpc("CreateToken", async (req) => {
      const created = await access.createToken(req.principal, wholeSeconds("ttl", req.ttl), req.description);
      return { token: created.token, info: tokenToWire(created.info) };
    }),
    listTokens: rpc("ListTokens", async (req) => ({
      tokens: (await access.listTokens(req.principal || undefined)).map(tokenToWire),
    })),
    revokeToken: rpc("RevokeToken", async (req) => ({
      token: tokenToWire(await access.revokeToken(req.id)),
    })),
    listAuditLog: rpc("ListAuditLog", async (req) => {
      const page = await access.listAudit(req.pageSize, req.pageToken, req.principal || undefined);
      return {
        records: page.items.map(({ at, ...r }) => ({ ...r, time: at })),
        nextPageToken: page.nextPageToken,
      };
    }),
  };
}

const principalToWire = (p: PrincipalRecord) => ({
  name: p.name,
  grants: p.grants.map(grantToString),
  sources: p.sources,
  createTime: p.createdAt,
});

const tokenToWire = (t: TokenInfo) => ({
  id: t.id,
  principal: t.principal,
  description: t.description,
  createTime: t.createdAt,
  expireTime: t.expiresAt,
  revokeTime: t.revokedAt,
});
