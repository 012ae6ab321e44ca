import { readFileSync } from "node:fs";
import { z } from "zod";

/**
 * Secrets of the configuration: where they may come from, and the one rule that decides what of a
 * configured value may be shown (GET /api/config, logs, metric labels, links).
 */

export const HIDDEN = "[hidden]";

/**
 * A secret given by reference instead of in the file: `{ env: "NAME" }` (an environment variable) or
 * `{ file: "/run/secrets/x" }` (a file's content, one trailing newline removed). Resolved at start.
 */
const secretReference = z.union([
  z.object({ env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "not an environment variable name") }).strict(),
  z.object({ file: z.string().min(1) }).strict(),
]);

function resolveReference(ref: z.infer<typeof secretReference>, ctx: z.RefinementCtx): string {
  if ("env" in ref) {
    const value = process.env[ref.env];
    if (value) return value;
    ctx.addIssue({ code: "custom", message: `environment variable ${ref.env} is not set (or empty)` });
    return z.NEVER;
  }
  try {
    const value = readFileSync(ref.file, "utf8").replace(/\r?\n$/, "");
    if (value) return value;
    ctx.addIssue({ code: "custom", message: `secret file ${ref.file} is empty` });
  } catch (err) {
    ctx.addIssue({ code: "custom", message: `cannot read secret file ${ref.file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})` });
  }
  return z.NEVER;
}

/** A string that may be written in the file or given as `{ env }` / `{ file }`; `inner` validates the resolved value. */
export function secretString<T extends z.ZodType<string, string>>(inner: T) {
  return z
    .union([z.string(), secretReference], { error: "expected a string, { env: NAME } or { file: PATH }" })
    .transform((v, ctx) => (typeof v === "string" ? v : resolveReference(v, ctx)))
    .pipe(inner);
}

/** Keys whose values are secret whatever they hold. */
const SECRET_KEY = /token|secret|password|passphrase|credential|apikey|api_key|privatekey|authorization/i;

function parseAbsoluteUrl(s: string): URL | undefined {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(s)) return undefined;
  try {
    return new URL(s);
  } catch {
    return undefined;
  }
}

/** The parts of a value that the redaction rule hides (empty: the value may be shown as it is). */
function hiddenParts(value: string, key: string, parentKey: string): string[] {
  // Every header value: Authorization, API keys, cookies — a header map holds nothing else worth showing.
  if (SECRET_KEY.test(key) || parentKey === "headers") return [value];
  const url = parseAbsoluteUrl(value);
  if (!url) return [];
  // User-info as written (percent-encoded) and decoded; query values come decoded.
  const userInfo = [url.username, url.password].filter(Boolean).flatMap((p) => [p, decodeURIComponent(p)]);
  return [...userInfo, ...[...url.searchParams.values()].filter(Boolean)];
}

/**
 * The one redaction rule, for every value of the configuration: values under secret-looking keys and
 * every header value are hidden whole; in a URL, the user-info and every query value are hidden.
 */
export function redact(value: unknown, key = "", parentKey = ""): unknown {
  if (typeof value === "string") {
    if (hiddenParts(value, key, parentKey).length === 0) return value;
    const url = SECRET_KEY.test(key) || parentKey === "headers" ? undefined : parseAbsoluteUrl(value);
    if (!url) return HIDDEN;
    const query = [...url.searchParams.keys()].map((k) => `${encodeURIComponent(k)}=${HIDDEN}`).join("&");
    return `${url.protocol}//${url.username || url.password ? `${HIDDEN}@` : ""}${url.host}${url.pathname}${query ? `?${query}` : ""}${url.hash}`;
  }
  if (Array.isArray(value)) return value.map((v) => redact(v, key, parentKey));
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, redact(v, k, key)]));
  }
  return value === undefined || value === null || !SECRET_KEY.test(key) ? value : HIDDEN;
}

/** Every secret string the rule hides in `value`, in the forms it may take in text (raw, URL- and JSON-escaped). */
export function secretStrings(value: unknown, key = "", parentKey = ""): string[] {
  if (typeof value === "string") {
    const parts = hiddenParts(value, key, parentKey);
    const auth = parseAbsoluteUrl(value);
    if (auth?.username || auth?.password) parts.push(basicAuthorization(auth).slice("Basic ".length));
    return parts.flatMap((p) => [p, encodeURIComponent(p), JSON.stringify(p).slice(1, -1)]);
  }
  if (Array.isArray(value)) return value.flatMap((v) => secretStrings(v, key, parentKey));
  if (value && typeof value === "object") return Object.entries(value as Record<string, unknown>).flatMap(([k, v]) => secretStrings(v, k, key));
  return [];
}

/**
 * A function that replaces every secret of `config` in free text (the last line of defence for logs:
 * error messages of libraries may quote a URL). Strings shorter than 4 characters are left alone,
 * since replacing them would garble every line; the code paths themselves never log a secret.
 */
export function secretScrubber(config: unknown): (text: string) => string {
  const secrets = [...new Set(secretStrings(config))].filter((s) => s.length >= 4).sort((a, b) => b.length - a.length);
  if (secrets.length === 0) return (text) => text;
  const pattern = new RegExp(secrets.map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|"), "g");
  return (text) => text.replace(pattern, HIDDEN);
}

function basicAuthorization(url: URL): string {
  return `Basic ${Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString("base64")}`;
}

/**
 * A URL with user-info split into an Authorization header: fetch() refuses URLs with credentials
 * (and would quote them in its error), so the user-info travels as HTTP Basic authentication.
 */
export function withoutCredentials(url: string): { url: string; headers: Record<string, string> } {
  const u = new URL(url);
  if (!u.username && !u.password) return { url, headers: {} };
  const authorization = basicAuthorization(u);
  u.username = "";
  u.password = "";
  return { url: u.href, headers: { Authorization: authorization } };
}

/**
 * How a URL destination is named where names are shown (store keys, metric labels, log fields): its host
 * and path only, never the user-info or query a URL may carry.
 */
export function urlDestinationName(url: string): string {
  const u = new URL(url);
  return `${u.host}${u.pathname.replace(/\/+$/, "")}`;
}
