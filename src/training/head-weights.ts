import { FEATURE_CHANNELS, HEAD_BIAS, HEAD_KERNEL, type WeightMap } from "../model/densenet121.ts";
import type { HeadWeights } from "./head-trainer.ts";

/**
 * The classifier head (`predictions/*`) taken out of, and put back into, a DenseNet121 weight map. Kept apart
 * from the trainers so that rebuilding the demo model (src/training/demo.ts, used by `cxr demo` at start-up)
 * does not load tfjs or the report's plotting stack.
 */
export function headFromWeights(w: WeightMap, classes: number): HeadWeights {
  const k = w.get(HEAD_KERNEL);
  const b = w.get(HEAD_BIAS);
  if (!k || !b) throw new Error(`starting model has no ${HEAD_KERNEL}/${HEAD_BIAS} (not a DenseNet121-14 from cxr model init/import)`);
  if (k.dims[0] !== FEATURE_CHANNELS || k.dims[1] !== classes) throw new Error(`${HEAD_KERNEL} is [${k.dims.join(",")}], expected [${FEATURE_CHANNELS},${classes}]`);
  return { kernel: k.data.slice(), bias: b.data.slice(), inputs: FEATURE_CHANNELS, outputs: classes };
}

export function withHead(w: WeightMap, head: HeadWeights): WeightMap {
  const out: WeightMap = new Map(w);
  out.set(HEAD_KERNEL, { dims: [head.inputs, head.outputs], data: head.kernel });
  out.set(HEAD_BIAS, { dims: [head.outputs], data: head.bias });
  return out;
}
