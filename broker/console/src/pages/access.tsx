// Principals, their tokens (a new token is shown once), and the audit log. Offered only to a
// caller with the admin permission.
import { useState } from "preact/hooks";
import { admin, reason } from "../api.ts";
import { time } from "../format.ts";
import { Confirm, ErrorBox, usePoll } from "../ui.tsx";

export function AccessPage() {
  const principals = usePoll(() => admin.listPrincipals({}), 0, []);
  const tokens = usePoll(() => admin.listTokens({}), 0, []);
  const [auditTokens, setAuditTokens] = useState<string[]>([""]);
  const audit = usePoll(
    () => admin.listAuditLog({ pageSize: 50, pageToken: auditTokens.at(-1) as string }),
    5000,
    [auditTokens],
  );
  const [created, setCreated] = useState<string | undefined>(undefined);
  const [problem, setProblem] = useState<string | undefined>(undefined);
  const [revoking, setRevoking] = useState<string | undefined>(undefined);
  const [form, setForm] = useState({ principal: "", description: "" });

  const createToken = async (event: Event) => {
    event.preventDefault();
    setProblem(undefined);
    try {
      const r = await admin.createToken({ principal: form.principal, description: form.description });
      setCreated(r.token);
      tokens.reload();
    } catch (error) {
      setProblem(reason(error));
    }
  };
  return (
    <>
      <h1>Access</h1>
      <h2>Principals</h2>
      <ErrorBox error={principals.error} />
      <table>
        <thead>
          <tr>
            <th>Principal</th>
            <th>Grants</th>
            <th>May publish as</th>
            <th>Created</th>
          </tr>
        </thead>
        <tbody>
          {principals.data?.principals.map((p) => (
            <tr key={p.name}>
              <td>{p.name}</td>
              <td>{p.grants.join(", ")}</td>
              <td>{p.sources.join(", ") || p.name}</td>
              <td>{time(p.createTime)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Tokens</h2>
      <form class="bar" onSubmit={createToken}>
        <select
          aria-label="principal"
          value={form.principal}
          onChange={(e) => setForm({ ...form, principal: (e.target as HTMLSelectElement).value })}
        >
          <option value="">principal...</option>
          {principals.data?.principals.map((p) => (
            <option key={p.name} value={p.name}>
              {p.name}
            </option>
          ))}
        </select>
        <input
          aria-label="description"
          placeholder="description"
          value={form.description}
          onInput={(e) => setForm({ ...form, description: (e.target as HTMLInputElement).value })}
        />
        <button type="submit" disabled={!form.principal}>
          Create token
        </button>
      </form>
      <ErrorBox error={problem ?? tokens.error} />
      {created && (
        <div class="notice">
          The new token, shown this once (the broker keeps only its digest):
          <div class="token" data-testid="new-token">
            {created}
          </div>
          <button type="button" onClick={() => setCreated(undefined)}>
            I have copied it
          </button>
        </div>
      )}
      {revoking && (
        <Confirm
          question={`Revoke token ${revoking}? Every broker refuses it within a second and ends its streams.`}
          onCancel={() => setRevoking(undefined)}
          onConfirm={async () => {
            const id = revoking;
            setRevoking(undefined);
            await admin.revokeToken({ id }).catch((error) => setProblem(reason(error)));
            tokens.reload();
          }}
        />
      )}
      <table>
        <thead>
          <tr>
            <th>Id</th>
            <th>Principal</th>
            <th>Description</th>
            <th>Created</th>
            <th>Expires</th>
            <th>Revoked</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {tokens.data?.tokens.map((t) => (
            <tr key={t.id}>
              <td>
                <code>{t.id}</code>
              </td>
              <td>{t.principal}</td>
              <td>{t.description}</td>
              <td>{time(t.createTime)}</td>
              <td>{t.expireTime ? time(t.expireTime) : "never"}</td>
              <td>{t.revokeTime ? time(t.revokeTime) : ""}</td>
              <td>
                {!t.revokeTime && (
                  <button type="button" class="danger" onClick={() => setRevoking(t.id)}>
                    Revoke
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Audit log</h2>
      <ErrorBox error={audit.error} />
      <table>
        <thead>
          <tr>
            <th>Time</th>
            <th>Principal</th>
            <th>Action</th>
            <th>Resource</th>
            <th>Result</th>
          </tr>
        </thead>
        <tbody>
          {audit.data?.records.map((r) => (
            <tr key={r.id}>
              <td>{time(r.time)}</td>
              <td>{r.principal}</td>
              <td>{r.method}</td>
              <td>{r.resource}</td>
              <td>
                {r.result}
                {r.detail && <span class="muted"> {r.detail}</span>}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <div class="bar">
        <button
          type="button"
          disabled={auditTokens.length === 1}
          onClick={() => setAuditTokens(auditTokens.slice(0, -1))}
        >
          Newer
        </button>
        <button
          type="button"
          disabled={!audit.data?.nextPageToken}
          onClick={() => setAuditTokens([...auditTokens, audit.data?.nextPageToken ?? ""])}
        >
          Older
        </button>
      </div>
    </>
  );
}
