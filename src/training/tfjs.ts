import { createRequire } from "node:module";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";

/**
 * tfjs-core's Node build (dist/tf-core.node.js) contains no gradient functions: they ship only as
 * ESM sources (dist/gradients/*.js, extensionless imports Node cannot load) and are normally pulled
 * in by the @tensorflow/tfjs umbrella package, which is not a dependency. We bundle
 * dist/register_all_gradients.js once per process with esbuild (present through tsx, which runs the
 * CLI) and evaluate it: tfjs keeps its kernel/gradient registry and engine in a global namespace,
 * so the bundled copy registers into the same registry the CPU/WebGPU backends use (~0.2 s).
 */
let registered: Promise<void> | undefined;

export function registerGradients(): Promise<void> {
  registered ??= (async () => {
    const require = createRequire(import.meta.url);
    const { buildSync } = (await import("esbuild")) as typeof import("esbuild");
    const entry = require.resolve("@tensorflow/tfjs-core/dist/register_all_gradients.js");
    const out = buildSync({ entryPoints: [entry], bundle: true, format: "cjs", platform: "node", write: false, logLevel: "error" });
    const mod = { exports: {} };
    new Function("module", "exports", "require", out.outputFiles[0]!.text)(mod, mod.exports, require);
    if (!tf.getGradient("Conv2D") || !tf.getGradient("Sigmoid")) throw new Error("tfjs gradients did not register (bundled register_all_gradients.js)");
  })();
  return registered;
}

/** The tfjs CPU backend with autodiff, without its one-time console hint to install tfjs-node (not used here). */
export async function useCpuBackend(): Promise<typeof tf> {
  await registerGradients();
  tf.env().set("IS_NODE", false);
  await tf.setBackend("cpu");
  await tf.ready();
  return tf;
}

/**
 * The tfjs WebGPU backend on Dawn for Node (npm `webgpu`): its `globals` (GPUBufferUsage, …) and a
 * `navigator.gpu` go on globalThis before the backend loads. Without a GPU, source
 * .cache/mesa/env.sh (scripts/setup-mesa.sh) first so Dawn finds Mesa's software Vulkan (lavapipe).
 */
export async function useWebGpuBackend(): Promise<typeof tf> {
  await registerGradients();
  const { create, globals } = (await import("webgpu")) as { create: (flags: string[]) => unknown; globals: Record<string, unknown> };
  Object.assign(globalThis, globals);
  Object.defineProperty(globalThis, "navigator", { value: { gpu: create([]) }, configurable: true, writable: true });
  await import("@tensorflow/tfjs-backend-webgpu");
  tf.env().set("IS_NODE", false);
  const ok = await tf.setBackend("webgpu");
  if (!ok) throw new Error("tfjs webgpu backend did not initialise (no WebGPU adapter: on a machine without a GPU, source .cache/mesa/env.sh from scripts/setup-mesa.sh)");
  await tf.ready();
  return tf;
}
