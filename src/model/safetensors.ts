import { readFileSync } from "node:fs";
import type { SourceTensor } from "./densenet121-weights.ts";

/**
 * A PyTorch DenseNet121 state dict saved as safetensors (`safetensors.torch.save_file(model.state_dict(), ...)`):
 * an 8-byte little-endian header length, a JSON header `{name: {dtype, shape, data_offsets}}`, then the raw
 * little-endian tensors. No Python is needed to read it. Names follow torchvision's DenseNet (`features.conv0`,
 * `features.denseblock1.denselayer1.norm1`, ..., `features.norm5`, `classifier`), with the prefixes wrappers add
 * (`module.` from DataParallel, `densenet121.` from CheXNet reimplementations) and the old `norm.1`/`conv.1`
 * spelling of torchvision < 0.3 checkpoints.
 */
export interface SafetensorsFile {
  metadata: Record<string, string>;
  tensors: SourceTensor[];
  /** Buffers that are not weights (BatchNorm's `num_batches_tracked` counters), left out. */
  skipped: string[];
}

interface HeaderEntry { dtype: string; shape: number[]; data_offsets: [number, number] }

const BYTES: Record<string, number> = { F32: 4, F64: 8, F16: 2, BF16: 2, I64: 8, I32: 4, U8: 1 };

/** 8-byte header length + a JSON object: how safetensors files are told apart from other formats. */
export function looksLikeSafetensors(head: Buffer, size: number): boolean {
  if (head.length < 9) return false;
  const n = head.readBigUInt64LE(0);
  return n > 1n && n < BigInt(size) && head[8] === 0x7b; // "{"
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (m / 1024);
  if (e === 31) return m ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + m / 1024);
}

function toFloat32(bytes: Buffer, dtype: string, where: string): Float32Array {
  const n = bytes.length / BYTES[dtype]!;
  const out = new Float32Array(n);
  if (dtype === "F32") for (let i = 0; i < n; i++) out[i] = bytes.readFloatLE(i * 4);
  else if (dtype === "F64") for (let i = 0; i < n; i++) out[i] = bytes.readDoubleLE(i * 8);
  else if (dtype === "F16") for (let i = 0; i < n; i++) out[i] = halfToFloat(bytes.readUInt16LE(i * 2));
  else if (dtype === "BF16") for (let i = 0; i < n; i++) out[i] = new Float32Array(new Uint32Array([bytes.readUInt16LE(i * 2) << 16]).buffer)[0]!;
  else throw new Error(`${where}: dtype ${dtype} is not a floating-point weight`);
  return out;
}

const TORCH_BN: Record<string, string> = { weight: "gamma", bias: "beta", running_mean: "moving_mean", running_var: "moving_variance" };

/** torchvision's name of a DenseNet121 tensor → the Keras 2 layer + parameter (see denseNet121Layers). */
export function torchvisionToKeras(name: string): { layer: string; param: string } | undefined {
  const i = name.search(/(^|\.)(features|classifier)\./);
  if (i < 0) return undefined;
  const n = name.slice(i === 0 ? 0 : i + 1).replace(/\.(norm|conv|relu)\.(\d)\./, ".$1$2.");
  let m: RegExpExecArray | null;
  const bn = (layer: string, p: string) => (TORCH_BN[p] ? { layer, param: TORCH_BN[p]! } : undefined);
  if ((m = /^features\.conv0\.weight$/.exec(n))) return { layer: "conv1/conv", param: "kernel" };
  if ((m = /^features\.norm0\.(\w+)$/.exec(n))) return bn("conv1/bn", m[1]!);
  if ((m = /^features\.denseblock(\d)\.denselayer(\d+)\.(norm1|conv1|norm2|conv2)\.(\w+)$/.exec(n))) {
    const p = `conv${Number(m[1]) + 1}_block${m[2]}`;
    const part = { norm1: "_0_bn", conv1: "_1_conv", norm2: "_1_bn", conv2: "_2_conv" }[m[3] as "norm1"];
    return m[3]!.startsWith("conv") ? (m[4] === "weight" ? { layer: p + part, param: "kernel" } : undefined) : bn(p + part, m[4]!);
  }
  if ((m = /^features\.transition(\d)\.(norm|conv)\.(\w+)$/.exec(n))) {
    const p = `pool${Number(m[1]) + 1}`;
    return m[2] === "conv" ? (m[3] === "weight" ? { layer: `${p}_conv`, param: "kernel" } : undefined) : bn(`${p}_bn`, m[3]!);
  }
  if ((m = /^features\.norm5\.(\w+)$/.exec(n))) return bn("bn", m[1]!);
  // torchvision's Linear, or CheXNet's Sequential(Linear, Sigmoid).
  if ((m = /^classifier(?:\.0)?\.(weight|bias)$/.exec(n))) return { layer: "classifier", param: m[1] === "weight" ? "kernel" : "bias" };
  return undefined;
}

function readHeader(file: string, buf: Buffer): { header: Record<string, HeaderEntry>; metadata: Record<string, string>; dataStart: number } {
  if (buf.length < 8) throw new Error(`${file}: truncated safetensors file (${buf.length} bytes)`);
  const n = Number(buf.readBigUInt64LE(0));
  if (8 + n > buf.length) throw new Error(`${file}: truncated safetensors file — its header says ${n} bytes of JSON, the file has ${buf.length - 8}`);
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(buf.subarray(8, 8 + n).toString("utf8")) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`${file}: the safetensors header is not JSON (${(err as Error).message})`);
  }
  const { __metadata__: metadata, ...header } = parsed;
  return { header: header as Record<string, HeaderEntry>, metadata: (metadata ?? {}) as Record<string, string>, dataStart: 8 + n };
}

export function readSafetensors(file: string): SafetensorsFile {
  const buf = readFileSync(file);
  const { header, metadata, dataStart } = readHeader(file, buf);
  const tensors: SourceTensor[] = [];
  const skipped: string[] = [];
  for (const [name, e] of Object.entries(header)) {
    const where = `${file}: ${name}`;
    if (name.endsWith(".num_batches_tracked")) {
      skipped.push(name);
      continue;
    }
    if (!BYTES[e.dtype] || !Array.isArray(e.shape) || !Array.isArray(e.data_offsets)) throw new Error(`${where}: malformed header entry ${JSON.stringify(e)}`);
    const [begin, end] = e.data_offsets;
    const want = e.shape.reduce((a, b) => a * b, 1) * BYTES[e.dtype]!;
    if (end - begin !== want) throw new Error(`${where}: ${end - begin} bytes for a ${e.dtype} tensor of shape [${e.shape.join(",")}] (${want} expected)`);
    if (dataStart + end > buf.length) throw new Error(`${where}: truncated safetensors file — the tensor ends at byte ${dataStart + end}, the file has ${buf.length}`);
    const mapped = torchvisionToKeras(name);
    const bytes = buf.subarray(dataStart + begin, dataStart + end);
    tensors.push({ ...(mapped ?? { layer: name, param: "" }), shape: e.shape, data: toFloat32(bytes, e.dtype, where), where });
  }
  return { metadata, tensors, skipped };
}
