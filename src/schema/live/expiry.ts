/**
 * Token expiries of every socket and stream of this process on one timer.
 * A timer per subscriber costs a Timeout object and its closures for as
 * long as the token lives; here callbacks wait in buckets by expiry second,
 * and one timer is armed for the earliest bucket.
 */

/** The longest delay `setTimeout` honours (2^31 − 1 ms, about 24.8 days); a longer one fires at once. */
const TIMER_DELAY_MAX_MS = 2_147_483_647;

/** Callbacks by expiry (epoch seconds). */
const buckets = new Map<number, Set<() => void>>();
let timer: NodeJS.Timeout | null = null;
/** The expiry second the timer is armed for; Infinity when it is not armed. */
let armedFor = Number.POSITIVE_INFINITY;

function arm(expSeconds: number): void {
  if (timer !== null) clearTimeout(timer);
  armedFor = expSeconds;
  // Tokens often live longer than one timer can wait (30 days by default): it re-arms until within reach.
  timer = setTimeout(fire, Math.min(Math.max(0, expSeconds * 1_000 - Date.now()), TIMER_DELAY_MAX_MS));
  timer.unref();
}

function fire(): void {
  timer = null;
  armedFor = Number.POSITIVE_INFINITY;
  const now = Date.now();
  let next = Number.POSITIVE_INFINITY;
  const due: (() => void)[] = [];
  for (const [expSeconds, callbacks] of buckets) {
    if (expSeconds * 1_000 <= now) {
      buckets.delete(expSeconds);
      due.push(...callbacks);
    } else if (expSeconds < next) next = expSeconds;
  }
  if (next !== Number.POSITIVE_INFINITY) arm(next);
  for (const callback of due) callback();
}

/**
 * Calls `callback` once `expSeconds` (a token's `exp`) has passed (at once
 * if it has already); returns the function that cancels it.
 */
export function atExpiry(expSeconds: number, callback: () => void): () => void {
  if (expSeconds * 1_000 - Date.now() <= 0) {
    callback();
    return () => {};
  }
  // Its own function, so the same callback given twice is cancelled once per call.
  const entry = () => callback();
  let callbacks = buckets.get(expSeconds);
  if (callbacks === undefined) {
    callbacks = new Set();
    buckets.set(expSeconds, callbacks);
  }
  callbacks.add(entry);
  if (expSeconds < armedFor) arm(expSeconds);
  return () => {
    const waiting = buckets.get(expSeconds);
    if (waiting === undefined || !waiting.delete(entry) || waiting.size > 0) return;
    buckets.delete(expSeconds);
    // The timer may stay armed for an emptied bucket: it then finds nothing due and re-arms for the next.
  };
}
