/**
 * What the dashboard asks over HTTP: documents from operations/*.graphql,
 * sent by persisted hash. `generations` and `spending` are newer than the
 * rest of the API; the dashboard copes with a server that lacks them.
 */
import {
  BalanceDocument,
  ClearBalanceAlertDocument,
  DashboardAccountSettingsDocument,
  DashboardGenerationDocument,
  DashboardGenerationsInProgressDocument,
  DashboardInsightsDocument,
  DashboardLedgerPageDocument,
  DashboardOperatorReportDocument,
  DashboardSpendingDocument,
  type DashboardSpendingQuery,
  SetBalanceAlertDocument,
  ViewerDocument,
} from "../../src/generated/graphql/graphql.ts";
import { persisted } from "./graphql.ts";

export const viewerQuery = persisted(ViewerDocument);
export const balanceQuery = persisted(BalanceDocument);
export const generationQuery = persisted(DashboardGenerationDocument);
export const generationsInProgressQuery = persisted(DashboardGenerationsInProgressDocument);
export const spendingQuery = persisted(DashboardSpendingDocument);
export const ledgerPageQuery = persisted(DashboardLedgerPageDocument);
export const insightsQuery = persisted(DashboardInsightsDocument);
export const operatorReportQuery = persisted(DashboardOperatorReportDocument);
export const accountSettingsQuery = persisted(DashboardAccountSettingsDocument);
export const setBalanceAlertMutation = persisted(SetBalanceAlertDocument);
export const clearBalanceAlertMutation = persisted(ClearBalanceAlertDocument);

/** Most generations in progress the dashboard lists at once. */
export const IN_PROGRESS_LIST_MAX = 50;

export type Spending = DashboardSpendingQuery["spending"];
