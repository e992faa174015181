// Dates and times in the reader's locale and time zone (the API speaks UTC).

const time = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const weekday = new Intl.DateTimeFormat(undefined, { weekday: "short" });
const shortDate = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short" });
const longDate = new Intl.DateTimeFormat(undefined, {
  weekday: "long",
  day: "numeric",
  month: "long",
  year: "numeric",
});
const full = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "short" });

const DAY_MS = 86_400_000;

/** Local calendar day of a timestamp, as "YYYY-MM-DD" (what date separators group by). */
export function dayKey(iso) {
  const d = new Date(iso);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}

/** "Today", "Yesterday" or the full date: the label of a date separator. */
export function dayLabel(iso, now = new Date()) {
  const key = dayKey(iso);
  if (key === dayKey(now)) return "Today";
  if (key === dayKey(new Date(now.getTime() - DAY_MS))) return "Yesterday";
  return longDate.format(new Date(iso));
}

/** Time of day ("14:05"). */
export function timeOf(iso) {
  return time.format(new Date(iso));
}

/** The full date and time, for tooltips and `<time>` titles. */
export function fullTime(iso) {
  return full.format(new Date(iso));
}

/** Compact "when" of the chat list: a time today, a weekday this week, else a date. */
export function shortWhen(iso, now = new Date()) {
  const then = new Date(iso);
  if (dayKey(iso) === dayKey(now)) return time.format(then);
  if (now.getTime() - then.getTime() < 6 * DAY_MS) return weekday.format(then);
  return shortDate.format(then);
}

/** Milliseconds since the epoch (timestamps' fraction digits vary, so never compare strings). */
export function millis(iso) {
  return iso ? Date.parse(iso) : 0;
}

/** A size in bytes as people read it: "512 B", "1.5 KB", "12 MB" (1 KB = 1 024 B). */
export function humanSize(bytes) {
  if (!(bytes >= 1024)) return `${bytes ?? 0} B`;
  const units = ["KB", "MB", "GB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}
