// Principals, tokens and the audit log in Postgres. Every change notifies all brokers (in the same
// transaction, so never before it is visible) so that their authenticators forget what they cached.
import type { Page } from "../delivery/model.ts";
import type { Principal } from "../security/grants.ts";
import type { AccessStore, AuditEntry, AuditRecord, NewToken } from "../security/ports.ts";
import { type Sql, type TransactionSql, transaction } from "./database.ts";
import {
  ACCESS_CHANNEL,
  deletePrincipalRow,
  insertAudit,
  insertPrincipal,
  insertToken,
  notifyAccessChanged,
  revokeEnvironmentTokensExcept,
  revokeTokenRow,
  selectAudit,
  selectPrincipal,
  selectPrincipals,
  selectTokens,
  selectTokenWithPrincipal,
  updatePrincipalRow,
  upsertPrincipal,
} from "./queries/access.ts";

export class PostgresAccessStore implements AccessStore {
  constructor(private readonly sql: Sql) {}

  findToken(id: string) {
    return selectTokenWithPrincipal(this.sql, id);
  }

  findPrincipal(name: string) {
    return selectPrincipal(this.sql, name);
  }

  insertPrincipal(principal: Principal) {
    return this.changing((tx) => insertPrincipal(tx, principal));
  }

  upsertPrincipal(principal: Principal) {
    return this.changing((tx) => upsertPrincipal(tx, principal));
  }

  updatePrincipal(principal: Principal) {
    return this.changing((tx) => updatePrincipalRow(tx, principal));
  }

  listPrincipals() {
    return selectPrincipals(this.sql);
  }

  deletePrincipal(name: string) {
    return this.changing((tx) => deletePrincipalRow(tx, name));
  }

  insertToken(token: NewToken) {
    return this.changing((tx) => insertToken(tx, token));
  }

  revokeEnvironmentTokensExcept(keepId: string) {
    return this.changing((tx) => revokeEnvironmentTokensExcept(tx, keepId));
  }

  listTokens(principal: string | undefined) {
    return selectTokens(this.sql, principal);
  }

  revokeToken(id: string) {
    return this.changing((tx) => revokeTokenRow(tx, id));
  }

  audit(entry: AuditEntry) {
    return insertAudit(this.sql, entry);
  }

  async listAudit(
    beforeId: string | undefined,
    limit: number,
    principal: string | undefined,
  ): Promise<Page<AuditRecord>> {
    const rows = await selectAudit(this.sql, beforeId, limit + 1, principal);
    const items = rows.slice(0, limit);
    return { items, nextPageToken: rows.length > limit ? (items.at(-1)?.id ?? "") : "" };
  }

  async onChange(listener: () => void): Promise<void> {
    // The second callback runs after a reconnect too: changes made meanwhile were not heard.
    await this.sql.listen(
      ACCESS_CHANNEL,
      () => listener(),
      () => listener(),
    );
  }

  private changing<T>(change: (tx: TransactionSql) => Promise<T>): Promise<T> {
    return transaction(this.sql, async (tx) => {
      const result = await change(tx);
      await notifyAccessChanged(tx);
      return result;
    });
  }
}
