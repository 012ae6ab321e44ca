import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import * as ort from "onnxruntime-node";

export const PROVIDERS = ["cpu", "webgpu", "cuda", "tensorrt"] as const;
export type Provider = (typeof PROVIDERS)[number];

export function isProvider(s: string): s is Provider {
  return (PROVIDERS as readonly string[]).includes(s);
}

/** The requested execution provider cannot run here; the message says which and why. */
export class ProviderUnavailableError extends Error {
  constructor(readonly provider: Provider, reason: string) {
    super(`execution provider "${provider}" is unavailable: ${reason}`);
    this.name = "ProviderUnavailableError";
  }
}

/** Where onnxruntime-node keeps libonnxruntime.so and, when its installer fetched them, the CUDA/TensorRT providers. */
export function ortBinaryDir(): string {
  const require = createRequire(import.meta.url);
  const pkgDir = dirname(require.resolve("onnxruntime-node/package.json"));
  return join(pkgDir, "bin", "napi-v6", process.platform, process.arch);
}

/**
 * Checks what can be known before creating a session. cuda/tensorrt are shared libraries that ORT's
 * npm installer downloads beside libonnxruntime only on request (and only on linux-x64); webgpu's
 * adapter can only be found by creating a session, so that failure is reported by `createSession`.
 */
export function checkProvider(provider: Provider): void {
  const backends = ort.listSupportedBackends();
  if (!backends.some((b) => b.name === provider)) {
    throw new ProviderUnavailableError(provider, `this onnxruntime-node build for ${process.platform}-${process.arch} does not include it (it has: ${backends.map((b) => b.name).join(", ")})`);
  }
  if (provider === "cuda" || provider === "tensorrt") {
    const dir = ortBinaryDir();
    const libs = ["libonnxruntime_providers_shared.so", `libonnxruntime_providers_${provider}.so`];
    const missing = libs.filter((l) => !existsSync(join(dir, l)));
    if (missing.length) {
      throw new ProviderUnavailableError(provider, `${missing.join(", ")} not found in ${dir}; onnxruntime-node's installer fetches them from NuGet (Microsoft.ML.OnnxRuntime.Gpu.Linux, CUDA 12) at npm install unless ONNXRUNTIME_NODE_INSTALL=skip, which this project's setup sets (see docs/gpu.md)`);
    }
  }
}

export interface SessionSettings {
  provider?: Provider;
  /** ORT intra-op threads (0 or unset: ORT's default, one per core). */
  threads?: number;
  /** Fall back to the CPU provider when the requested one cannot start, instead of failing. */
  allowFallback?: boolean;
}

export function sessionOptions(provider: Provider, threads?: number): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: [provider],
    graphOptimizationLevel: "all",
    ...(threads ? { intraOpNumThreads: threads, interOpNumThreads: 1 } : {}),
  };
}

/**
 * Creates a session on the requested provider. Without `allowFallback` every failure is an error naming
 * the provider; with it, the CPU provider is used and `fallbackReason` says why.
 */
export async function createSession(model: Uint8Array, settings: SessionSettings, modelPath: string): Promise<{ session: ort.InferenceSession; provider: Provider; fallbackReason?: string }> {
  const provider = settings.provider ?? "cpu";
  try {
    checkProvider(provider);
    const session = await ort.InferenceSession.create(model, sessionOptions(provider, settings.threads));
    return { session, provider };
  } catch (err) {
    const reason = err instanceof ProviderUnavailableError ? err : new ProviderUnavailableError(provider, `session for ${modelPath} could not start: ${firstLine(err)}${provider === "webgpu" ? " (without a GPU, source .cache/mesa/env.sh from scripts/setup-mesa.sh first)" : ""}`);
    if (!settings.allowFallback || provider === "cpu") throw reason;
    const session = await ort.InferenceSession.create(model, sessionOptions("cpu", settings.threads));
    return { session, provider: "cpu", fallbackReason: reason.message };
  }
}

/** ORT's first message line, without its source-location prefix ("/onnxruntime_src/...cc:136 ... was false."). */
function firstLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  const line = msg.split("\n").find((l) => l.trim())?.trim() ?? msg;
  return line.match(/(Failed to .*)$/)?.[1] ?? line;
}
