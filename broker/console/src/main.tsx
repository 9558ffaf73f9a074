// The console's shell: sign-in, navigation (hash routes) and the pages.
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { admin, Code, codeOf, reason, session } from "./api.ts";
import { AccessPage } from "./pages/access.tsx";
import { OverviewPage } from "./pages/overview.tsx";
import { SubscriptionPage } from "./pages/subscription.tsx";
import { TopicPage } from "./pages/topic.tsx";
import "./style.css";

function useRoute(): string {
  const [route, setRoute] = useState(location.hash.slice(1) || "/");
  useEffect(() => {
    const changed = () => setRoute(location.hash.slice(1) || "/");
    addEventListener("hashchange", changed);
    return () => removeEventListener("hashchange", changed);
  }, []);
  return route;
}

type SignIn = { state: "checking" } | { state: "needed"; error?: string } | { state: "in"; admin: boolean };

/** Whether the broker answers this tab as it is (with its token, or with none on a broker without auth). */
async function check(): Promise<SignIn> {
  try {
    await admin.listTopicSummaries({ pageSize: 1 });
  } catch (error) {
    const code = codeOf(error);
    if (code === Code.Unauthenticated)
      return { state: "needed", error: session.token ? reason(error) : undefined };
    if (code !== Code.PermissionDenied) return { state: "needed", error: reason(error) };
  }
  // The access page is offered only to a caller who may use it.
  const mayAdmin = await admin.listPrincipals({}).then(
    () => true,
    () => false,
  );
  return { state: "in", admin: mayAdmin };
}

function App() {
  const [signIn, setSignIn] = useState<SignIn>({ state: "checking" });
  const route = useRoute();
  useEffect(() => {
    void check().then(setSignIn);
  }, []);
  if (signIn.state === "checking") return <main class="muted">Connecting to the broker...</main>;
  if (signIn.state === "needed") return <SignInForm error={signIn.error} onSignedIn={setSignIn} />;
  const [, page, name] = route.split("/").map(decodeURIComponent);
  return (
    <>
      <header>
        <strong>pgmesh</strong>
        <a href="#/" class={page === "" ? "active" : ""}>
          Overview
        </a>
        {signIn.admin && (
          <a href="#/access" class={page === "access" ? "active" : ""}>
            Access
          </a>
        )}
        <span class="who">
          {session.token ? "signed in with a token" : "no authentication (loopback)"}
          {session.token && (
            <button
              type="button"
              onClick={() => {
                session.token = undefined;
                setSignIn({ state: "needed" });
              }}
            >
              Sign out
            </button>
          )}
        </span>
      </header>
      <main>
        {page === "topics" && name ? (
          <TopicPage name={name} />
        ) : page === "subscriptions" && name ? (
          <SubscriptionPage name={name} />
        ) : page === "access" && signIn.admin ? (
          <AccessPage />
        ) : (
          <OverviewPage />
        )}
      </main>
    </>
  );
}

function SignInForm({ error, onSignedIn }: { error?: string; onSignedIn: (s: SignIn) => void }) {
  const [token, setToken] = useState("");
  const [problem, setProblem] = useState(error);
  const [busy, setBusy] = useState(false);
  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    session.token = token.trim();
    const result = await check();
    setBusy(false);
    if (result.state === "in") onSignedIn(result);
    else {
      session.token = undefined;
      setProblem(result.state === "needed" ? (result.error ?? "the token was not accepted") : undefined);
    }
  };
  return (
    <form class="signin" onSubmit={submit}>
      <h1>Sign in to pgmesh</h1>
      <p class="muted">
        Paste a token (<code>pgmesh tokens create &lt;principal&gt;</code>). The console can do what the
        token's principal may do, and no more.
      </p>
      <input
        type="password"
        name="token"
        aria-label="token"
        placeholder="token"
        value={token}
        onInput={(e) => setToken((e.target as HTMLInputElement).value)}
      />
      {problem && <div class="error">{problem}</div>}
      <button class="primary" type="submit" disabled={busy || !token.trim()}>
        Sign in
      </button>
    </form>
  );
}

render(<App />, document.getElementById("app") as HTMLElement);
