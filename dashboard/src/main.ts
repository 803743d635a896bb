/**
 * The usage dashboard: sign in with a token, pick an account, watch it live.
 * The token lives in sessionStorage (this tab only); a `#token=` fragment,
 * as the dev-login and the demo hand out, is taken once and removed from the
 * address bar.
 */
import "./style.css";
import { AccountView } from "./account.ts";
import { byId, el, show } from "./dom.ts";
import { downloadLedgerCsv } from "./export.ts";
import { GraphQLClient, RequestError, UnauthorizedError } from "./graphql.ts";
import { viewerQuery } from "./operations.ts";
import { presetDays, type Range, rangeOf } from "./range.ts";
import { renderConnection, renderSpending } from "./view.ts";

/** What the server tells the page about itself (`/dashboard/config.json`). */
interface DashboardConfig {
  /** Whether `/dashboard/dev-login` can sign a token (embedded mode, from this machine). */
  readonly devLogin: boolean;
}

const TOKEN_KEY = "creditbook.token";
const graphqlUrl = new URL("/graphql", location.href).toString();

let token: string | null = takeTokenFromFragment() ?? sessionStorage.getItem(TOKEN_KEY);
const client = new GraphQLClient({ url: graphqlUrl, token: () => token });
let current: AccountView | null = null;
let currentAccountId: string | null = null;
let range: Range = {};
/** The signed-in token's role, from `viewer`. */
let role: string | null = null;

function takeTokenFromFragment(): string | null {
  const value = new URLSearchParams(location.hash.slice(1)).get("token");
  if (value === null || value === "") return null;
  sessionStorage.setItem(TOKEN_KEY, value);
  // A token must not stay in the address bar, the history or a screenshot.
  history.replaceState(null, "", location.pathname + location.search);
  return value;
}

function showError(message: string | null): void {
  const banner = byId("error");
  byId("error-text").textContent = message ?? "";
  show(banner, message !== null);
}

function signOut(message: string | null): void {
  current?.close();
  current = null;
  token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  show(byId("dashboard"), false);
  show(byId("account-bar"), false);
  show(byId("sign-in"), true);
  byId("sign-in-message").textContent = message ?? "";
  show(byId("sign-in-message"), message !== null);
  renderConnection({ kind: "stopped" });
  byId<HTMLTextAreaElement>("token").focus();
}

async function enter(): Promise<void> {
  showError(null);
  let viewer: Awaited<ReturnType<typeof loadViewer>>;
  try {
    viewer = await loadViewer();
  } catch (error) {
    if (error instanceof UnauthorizedError)
      return signOut("That token was refused: it is malformed, badly signed or expired.");
    if (error instanceof RequestError) return showError(error.message);
    throw error;
  }
  show(byId("sign-in"), false);
  show(byId("account-bar"), true);
  byId("whoami").textContent = `${viewer.id} (${viewer.role})`;
  role = viewer.role;
  const select = byId<HTMLSelectElement>("account");
  select.replaceChildren(
    ...viewer.accounts.map((account) =>
      el(
        "option",
        { value: account.id },
        `${account.name} · ${account.kind === "WORKSPACE" ? "workspace" : "personal"}`,
      ),
    ),
  );
  // Services and admins are members of nothing but may open any account by id.
  const platform = viewer.role !== "user";
  show(byId("account-select"), viewer.accounts.length > 0);
  show(byId("account-id-form"), platform);
  const requested = new URLSearchParams(location.search).get("account");
  const chosen =
    viewer.accounts.find((account) => account.id === requested)?.id ??
    (platform && requested !== null ? requested : viewer.accounts[0]?.id);
  if (chosen === undefined) {
    show(byId("dashboard"), false);
    showError(platform ? "Enter an account id to watch." : "You are not a member of any account yet.");
    return;
  }
  await openAccount(chosen);
}

async function loadViewer() {
  return (await client.data(viewerQuery, {})).viewer;
}

async function openAccount(accountId: string): Promise<void> {
  current?.close();
  showError(null);
  const select = byId<HTMLSelectElement>("account");
  if ([...select.options].some((option) => option.value === accountId)) select.value = accountId;
  const url = new URL(location.href);
  url.searchParams.set("account", accountId);
  history.replaceState(null, "", url);
  show(byId("dashboard"), true);
  renderSpending(undefined);
  const view = new AccountView({
    accountId,
    client,
    wsUrl: graphqlUrl.replace(/^http/, "ws"),
    token: () => token,
    onUnauthorized: (message) => signOut(message),
    onError: showError,
    range: () => range,
    operator: role === "admin",
  });
  current = view;
  currentAccountId = accountId;
  show(byId("feed-more"), true);
  if (!(await view.open()) && current === view) show(byId("dashboard"), false);
}

async function loadConfig(): Promise<DashboardConfig> {
  try {
    const response = await fetch("/dashboard/config.json");
    if (response.ok) return (await response.json()) as DashboardConfig;
  } catch {
    // Without the config the page still works; it just offers no dev sign-in.
  }
  return { devLogin: false };
}

function wire(): void {
  byId<HTMLFormElement>("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const pasted = byId<HTMLTextAreaElement>("token")
      .value.trim()
      .replace(/^Bearer\s+/i, "");
    if (pasted === "") return;
    token = pasted;
    sessionStorage.setItem(TOKEN_KEY, pasted);
    byId<HTMLTextAreaElement>("token").value = "";
    void enter();
  });
  byId("sign-out").addEventListener("click", () => signOut(null));
  byId<HTMLSelectElement>("account").addEventListener("change", (event) => {
    void openAccount((event.target as HTMLSelectElement).value);
  });
  byId<HTMLFormElement>("account-id-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const id = byId<HTMLInputElement>("account-id").value.trim();
    if (id !== "") void openAccount(id);
  });
  byId<HTMLSelectElement>("feed-filter").addEventListener("change", (event) => {
    byId("feed").dataset.filter = (event.target as HTMLSelectElement).value;
  });
  byId("error-dismiss").addEventListener("click", () => showError(null));
  wireRange();
  byId<HTMLButtonElement>("feed-more").addEventListener("click", async (event) => {
    const button = event.currentTarget as HTMLButtonElement;
    const view = current;
    if (view === null) return;
    button.disabled = true;
    const more = await view.loadMore();
    button.disabled = false;
    if (current === view) show(button, more);
  });
  byId("csv").addEventListener("click", () => {
    if (currentAccountId === null) return;
    downloadLedgerCsv(currentAccountId, range, token).catch((error: unknown) => {
      if (error instanceof UnauthorizedError)
        signOut("Your session ended: the token expired or was refused.");
      else showError(error instanceof Error ? error.message : String(error));
    });
  });
}

/** The range form: two day inputs and presets; every change refreshes the figures that depend on it. */
function wireRange(): void {
  const from = byId<HTMLInputElement>("range-from");
  const to = byId<HTMLInputElement>("range-to");
  const apply = () => {
    range = rangeOf(from.value, to.value);
    byId("range-label").textContent =
      from.value === "" && to.value === ""
        ? "All time"
        : `${from.value || "start"} to ${to.value || "today"} (UTC)`;
    void current?.rangeChanged();
  };
  byId<HTMLFormElement>("range-form").addEventListener("submit", (event) => {
    event.preventDefault();
    apply();
  });
  for (const button of byId("range-presets").querySelectorAll<HTMLButtonElement>("button[data-days]")) {
    button.addEventListener("click", () => {
      const days = Number(button.dataset.days);
      if (days === 0) {
        from.value = "";
        to.value = "";
      } else {
        ({ from: from.value, to: to.value } = presetDays(days));
      }
      apply();
    });
  }
}

async function boot(): Promise<void> {
  wire();
  const config = await loadConfig();
  show(byId("dev-login-form"), config.devLogin);
  if (token === null) signOut(null);
  else await enter();
}

void boot();
