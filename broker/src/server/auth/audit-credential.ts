// How the audit log names the credential a call was made with: a principal can hold several tokens
// (one of them leaked) and be mapped from several certificates, so the principal alone does not say
// which one acted. Neither form reveals a secret: a token's id is its public name, and a
// certificate's fingerprint is public.
import type { Credential } from "../../security/authenticator.ts";

export interface ClientCertificate {
  commonName: string | undefined;
  /** Colon-separated upper-case hex, as Node and `openssl x509 -fingerprint -sha256` give it. */
  fingerprint256: string;
}

/** `token <id>`, `certificate sha256:<fingerprint>`, or "" when nothing was presented. */
export function auditCredential(
  credential: Credential | undefined,
  certificate: ClientCertificate | undefined,
): string {
  if (credential?.kind === "token") return `token ${credential.id}`;
  if (certificate) return `certificate sha256:${certificate.fingerprint256}`;
  return "";
}
