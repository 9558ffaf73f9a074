// `pgmesh principals`, `pgmesh tokens` and `pgmesh audit`, and how the CLI connects (TLS, token).
import { readFileSync } from "node:fs";
import type { ConnectOptions, PgmeshClient } from "@pgmesh/sdk";
import { type Command, InvalidArgumentError } from "commander";

interface ConnectFlags {
  token?: string;
  tokenFile?: string;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  tls?: boolean;
}

export function connectOptions(flags: ConnectFlags): ConnectOptions {
  const token = flags.token ?? (flags.tokenFile ? readFileSync(flags.tokenFile, "utf8").trim() : undefined);
  if (Boolean(flags.certFile) !== Boolean(flags.keyFile)) {
    throw new InvalidArgumentError("--cert-file and --key-file go together");
  }
  const secure = flags.tls || flags.caFile || flags.certFile;
  return {
    token,
    tls: secure
      ? {
          ca: flags.caFile ? readFileSync(flags.caFile) : undefined,
          cert: flags.certFile ? readFileSync(flags.certFile) : undefined,
          key: flags.keyFile ? readFileSync(flags.keyFile) : undefined,
        }
      : undefined,
  };
}

type WithClient = <A extends unknown[]>(
  run: (c: PgmeshClient, ...args: A) => Promise<void>,
) => (...args: A) => Promise<void>;

export function addAccessCommands(program: Command, withClient: WithClient): void {
  const principals = program
    .command("principals")
    .description("manage who may do what (needs the admin permission)");
  principals
    .command("create <name>")
    .description(
      "create a principal; its tokens (or a client certificate mapped to it by PGMESH_CERT_PRINCIPALS) act as it",
    )
    .requiredOption(
      "-g, --grant <grants...>",
      "permission:name, e.g. publish:orders.* consume:billing read:* manage:orders.*, or admin",
    )
    .option(
      "-s, --source <sources...>",
      "the event sources it may publish as (default: its own name; '*' for a relay or gateway)",
    )
    .action(
      withClient(async (c, name: string, options: { grant: string[]; source?: string[] }) => {
        const p = await c.createPrincipal(name, options.grant, options.source ?? []);
        console.log(`created principal ${p.name}: ${p.grants.join(" ")}${sourcesOf(p.sources)}`);
      }),
    );
  principals
    .command("update <name>")
    .description(
      "replace a principal's grants and sources; its tokens stay, its streams the new grants do not allow end",
    )
    .requiredOption("-g, --grant <grants...>", "the grants it holds from now on (as for create)")
    .option("-s, --source <sources...>", "the event sources it may publish as (default: its own name)")
    .action(
      withClient(async (c, name: string, options: { grant: string[]; source?: string[] }) => {
        const p = await c.updatePrincipal(name, options.grant, options.source ?? []);
        console.log(`updated principal ${p.name}: ${p.grants.join(" ")}${sourcesOf(p.sources)}`);
      }),
    );
  principals
    .command("list")
    .description("list principals and their grants")
    .action(
      withClient(async (c) => {
        for (const p of await c.listPrincipals()) {
          console.log(`${p.name}\t${p.grants.join(" ")}${sourcesOf(p.sources)}`);
        }
      }),
    );
  principals
    .command("delete <name>")
    .description("delete a principal and its tokens")
    .action(
      withClient(async (c, name: string) => {
        await c.deletePrincipal(name);
        console.log(`deleted principal ${name} and its tokens`);
      }),
    );

  const tokens = program.command("tokens").description("manage bearer tokens (needs the admin permission)");
  tokens
    .command("create <principal>")
    .description("create a token for a principal; it is printed once and cannot be shown again")
    .option("--ttl <seconds>", "expire after this many seconds (default: never)", positive)
    .option("-d, --description <text>", "what the token is for")
    .action(
      withClient(async (c, principal: string, options: { ttl?: number; description?: string }) => {
        const { token, info } = await c.createToken(principal, {
          ttlSeconds: options.ttl,
          description: options.description,
        });
        console.error(
          `created token ${info.id} for ${info.principal}${info.expireTime ? `, expires ${info.expireTime.toISOString()}` : ""}; it is shown only now:`,
        );
        console.log(token);
      }),
    );
  tokens
    .command("list [principal]")
    .description("list tokens (ids, not the tokens themselves)")
    .action(
      withClient(async (c, principal?: string) => {
        for (const t of await c.listTokens(principal ?? "")) {
          const state = t.revokeTime
            ? `revoked ${t.revokeTime.toISOString()}`
            : t.expireTime
              ? `expires ${t.expireTime.toISOString()}`
              : "never expires";
          console.log(`${t.id}\t${t.principal}\t${state}\t${t.description}`);
        }
      }),
    );
  tokens
    .command("revoke <id>")
    .description("revoke a token: every broker refuses it within a second")
    .action(
      withClient(async (c, id: string) => {
        const t = await c.revokeToken(id);
        console.log(`revoked token ${t.id} of ${t.principal}`);
      }),
    );

  program
    .command("audit")
    .description("list admin actions, newest first (needs the admin permission)")
    .option("-p, --principal <name>", "only this principal's actions")
    .option("-n, --limit <n>", "at most this many (default 100)", positive)
    .action(
      withClient(async (c, options: { principal?: string; limit?: number }) => {
        const page = await c.listAuditLog({ principal: options.principal, pageSize: options.limit ?? 100 });
        for (const r of page.records) {
          const detail = r.detail ? `\t${r.detail}` : "";
          console.log(
            `${r.time?.toISOString() ?? ""}\t${r.principal}\t${r.credential || "-"}\t${r.method}\t${r.resource}\t${r.result}${detail}`,
          );
        }
      }),
    );
}

const sourcesOf = (sources: string[]) => (sources.length > 0 ? ` (sources: ${sources.join(" ")})` : "");

function positive(raw: string): number {
  const value = Number(raw.replace(/s$/, ""));
  if (!Number.isInteger(value) || value < 1)
    throw new InvalidArgumentError(`${raw} is not a positive whole number`);
  return value;
}
