/**
 * The "Download CSV" button: the ledger of the account in the chosen range
 * from `GET /export/ledger.csv`, fetched with the page's token (a plain link
 * could not send it) and handed to the browser as a file.
 */
import { RequestError, UnauthorizedError } from "./graphql.ts";
import type { Range } from "./range.ts";

export async function downloadLedgerCsv(
  accountId: string,
  range: Range,
  token: string | null,
): Promise<void> {
  const url = new URL("/export/ledger.csv", location.href);
  url.searchParams.set("accountId", accountId);
  if (range.from !== undefined) url.searchParams.set("from", range.from);
  if (range.to !== undefined) url.searchParams.set("to", range.to);
  const response = await fetch(url, { headers: token === null ? {} : { authorization: `Bearer ${token}` } });
  if (response.status === 401) throw new UnauthorizedError("The export refused the token");
  if (!response.ok)
    throw new RequestError(`The export failed: HTTP ${response.status} ${await response.text()}`);
  const file = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = file;
  link.download = `ledger-${range.from?.slice(0, 10) ?? "start"}-${range.to?.slice(0, 10) ?? "now"}.csv`;
  document.body.append(link);
  link.click();
  link.remove();
  // The browser has the file once the click is handled; the URL only holds memory after that.
  setTimeout(() => URL.revokeObjectURL(file), 60_000);
}
