import { randomBytes } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { NextFunction, Request, Response } from "express";

/**
 * What the browser is told on every response (the worklist page, the viewer and the API), the
 * session cookie that replaces the token in page addresses, and the WebSocket's Origin check.
 */

/**
 * The page and the viewer load only their own scripts, styles and workers; the viewer's codecs are
 * WebAssembly ('wasm-unsafe-eval' allows compiling it, not eval), heatmaps are drawn from blob: and
 * data: images, and every request goes to this origin (the PACS through the same-origin proxy).
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "font-src 'self'",
  "connect-src 'self'",
  "worker-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** Headers for every response: no MIME sniffing, no framing (CSP and the older X-Frame-Options), no referrer. */
export function securityHeaders(_req: Request, res: Response, next: NextFunction): void {
  res.set({
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
  });
  next();
}

/** Responses that carry patient data (or the pages that show it) are never kept by a browser or proxy cache. */
export function noStore(_req: Request, res: Response, next: NextFunction): void {
  res.set("Cache-Control", "no-store");
  next();
}

export const SESSION_COOKIE = "cxr_session";

/**
 * Browser sessions, in memory: a random id per page load that presented a valid token. A session
 * ends `idleMs` after its last use, but not while one of its WebSockets is open (a worklist left open
 * on a reading-room screen stays live). A restart ends every session: open the address with the token again.
 */
export class SessionStore {
  private readonly sessions = new Map<string, { expiresAt: number; sockets: number }>();

  constructor(private readonly idleMs: number) {}

  create(now = Date.now()): string {
    for (const [id, s] of this.sessions) if (s.sockets === 0 && s.expiresAt <= now) this.sessions.delete(id);
    const id = randomBytes(32).toString("base64url");
    this.sessions.set(id, { expiresAt: now + this.idleMs, sockets: 0 });
    return id;
  }

  /** Whether the session is valid; a valid one is kept for another idle period. */
  use(id: string, now = Date.now()): boolean {
    const s = this.sessions.get(id);
    if (!s) return false;
    if (s.sockets === 0 && s.expiresAt <= now) {
      this.sessions.delete(id);
      return false;
    }
    s.expiresAt = now + this.idleMs;
    return true;
  }

  /** A WebSocket of the session opened (it holds the session) or closed (the idle period starts again). */
  socketOpened(id: string): void {
    const s = this.sessions.get(id);
    if (s) s.sockets++;
  }
  socketClosed(id: string, now = Date.now()): void {
    const s = this.sessions.get(id);
    if (!s) return;
    s.sockets = Math.max(0, s.sockets - 1);
    s.expiresAt = now + this.idleMs;
  }

  get size(): number {
    return this.sessions.size;
  }
}

/** The session cookie: HttpOnly (no script reads it), SameSite=Strict (no other site's request carries it), no Max-Age (ends with the browser). */
export function sessionCookie(id: string, secure: boolean): string {
  return `${SESSION_COOKIE}=${id}; Path=/; HttpOnly; SameSite=Strict${secure ? "; Secure" : ""}`;
}

/** The session id a request carries in its Cookie header, if any. */
export function sessionId(headers: IncomingMessage["headers"]): string | undefined {
  for (const part of (headers.cookie ?? "").split(";")) {
    const [name, ...value] = part.trim().split("=");
    if (name === SESSION_COOKIE) return value.join("=");
  }
  return undefined;
}

/**
 * Whether a WebSocket upgrade may proceed: a browser always sends Origin, and only a page of this
 * server (same scheme, host and port as the request's Host) or one of `allowedOrigins` may connect.
 * Without Origin the client is not a browser and carries its own token.
 */
export function originAllowed(headers: IncomingMessage["headers"], secure: boolean, allowedOrigins: readonly string[]): boolean {
  const origin = headers.origin;
  if (origin === undefined) return true;
  if (origin !== "null" && headers.host && origin.toLowerCase() === `${secure ? "https" : "http"}://${headers.host.toLowerCase()}`) return true;
  return allowedOrigins.some((o) => new URL(o).origin === origin.toLowerCase());
}
