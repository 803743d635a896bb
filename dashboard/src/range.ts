/**
 * The date range the dashboard's figures cover: whole UTC days picked in the
 * range form, sent as [from, to) instants (the end day included).
 */

export interface Range {
  /** ISO instant, inclusive; undefined: from the first generation. */
  readonly from?: string;
  /** ISO instant, exclusive; undefined: up to now. */
  readonly to?: string;
}

/** Days of the presets the form offers. */
export const PRESET_DAYS = [7, 30, 90] as const;

/** The range from the form's `YYYY-MM-DD` inputs (empty: open); the `to` day is included. */
export function rangeOf(fromDay: string, toDay: string): Range {
  const from = fromDay === "" ? undefined : new Date(`${fromDay}T00:00:00Z`);
  const to = toDay === "" ? undefined : new Date(Date.parse(`${toDay}T00:00:00Z`) + 86_400_000);
  return {
    ...(from === undefined || Number.isNaN(from.getTime()) ? {} : { from: from.toISOString() }),
    ...(to === undefined || Number.isNaN(to.getTime()) ? {} : { to: to.toISOString() }),
  };
}

/** The form's day strings for the last `days` days up to today (UTC). */
export function presetDays(days: number, now = new Date()): { from: string; to: string } {
  const today = now.toISOString().slice(0, 10);
  const from = new Date(Date.parse(`${today}T00:00:00Z`) - (days - 1) * 86_400_000)
    .toISOString()
    .slice(0, 10);
  return { from, to: today };
}
