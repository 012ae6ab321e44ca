/** One JSON POST with a deadline; the response, or why there was none. */
export async function postJson(
  url: string, body: string, headers: Record<string, string>, timeoutMs: number, contentType = "application/json",
): Promise<{ status: number; text: string } | { status: undefined; error: string }> {
  try {
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": `${contentType}; charset=utf-8`, accept: contentType, ...headers },
      body,
      signal: AbortSignal.timeout(timeoutMs),
    });
    return { status: res.status, text: await res.text() };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    return { status: undefined, error: e.cause?.code ?? e.cause?.message ?? e.message };
  }
}

/** Client errors other than timeouts, rate limits and credentials will not pass on a retry; the rest may. */
export function retryableStatus(status: number): boolean {
  return status >= 500 || status === 408 || status === 429 || status === 401 || status === 403;
}
