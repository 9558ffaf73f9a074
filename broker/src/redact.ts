// Secrets never reach the log: a connection string's password is replaced before any line is
// written (supervisors keep logs and ship them to others who may not read the database).

/** `postgres://user:***@host/db`: the URL with its password masked; anything else as it is. */
export function redactedUrl(url: string): string {
  if (!URL.canParse(url)) return url;
  const parsed = new URL(url);
  if (!parsed.password) return url;
  parsed.password = "***";
  return parsed.toString();
}

// user:password@ after a URL scheme, wherever it appears in a message or a stack trace.
const CREDENTIALS_IN_URL = /([a-z][a-z0-9+.-]*:\/\/[^\s:/@]*:)[^\s@/]*@/gi;

/** The text with the password of every URL in it masked. */
export function redactUrls(text: string): string {
  return text.replace(CREDENTIALS_IN_URL, "$1***@");
}
