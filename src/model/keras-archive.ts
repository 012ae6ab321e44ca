import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { unzipSync } from "fflate";
import { readKerasHdf5, type KerasWeightsFile } from "./keras-h5.ts";

/**
 * A Keras 3 `.keras` archive (what `model.save("x.keras")` writes by default): a zip holding `metadata.json`
 * (Keras version), `config.json` (the model's architecture) and `model.weights.h5` (Keras 3 HDF5 layout).
 */
export interface KerasArchive extends KerasWeightsFile {
  /** The square input size the model was built for, when its InputLayer fixes one. */
  inputSize?: number;
  /** The Dense head's activation as configured (the seed's is "sigmoid"). */
  headActivation?: string;
}

const WEIGHTS_ENTRY = "model.weights.h5";

interface LayerConfig { class_name?: string; config?: { name?: string; activation?: string; batch_shape?: unknown; batch_input_shape?: unknown; layers?: LayerConfig[] } }

/** The three entries a .keras archive has (only those are inflated), and the names of all entries. */
function entries(file: string): { zip: Record<string, Uint8Array>; names: string[] } {
  const names: string[] = [];
  try {
    const zip = unzipSync(readFileSync(file), { filter: (f) => (names.push(f.name), f.name === "config.json" || f.name === "metadata.json" || f.name === WEIGHTS_ENTRY) });
    return { zip, names };
  } catch (err) {
    throw new Error(`${file}: damaged zip archive (${(err as Error).message})`);
  }
}

function json(file: string, name: string, bytes: Uint8Array): Record<string, unknown> {
  try {
    return JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`${file}: ${name} is not JSON (${(err as Error).message})`);
  }
}

/** Every layer config, descending into nested models (a DenseNet used as one layer of a Sequential/Functional). */
function allLayers(layers: LayerConfig[] | undefined): LayerConfig[] {
  return (layers ?? []).flatMap((l) => [l, ...allLayers(l.config?.layers)]);
}

function squareInput(layers: LayerConfig[]): number | undefined {
  const input = layers.find((l) => l.class_name === "InputLayer");
  const shape = (input?.config?.batch_shape ?? input?.config?.batch_input_shape) as (number | null)[] | undefined;
  // channels-last [N, H, W, 3]
  return Array.isArray(shape) && shape.length === 4 && typeof shape[1] === "number" && shape[1] === shape[2] ? shape[1] : undefined;
}

export async function readKerasArchive(file: string): Promise<KerasArchive> {
  const { zip, names } = entries(file);
  const listed = `${names.slice(0, 6).join(", ")}${names.length > 6 ? `, ... (${names.length} entries)` : ""}`;
  if (names.some((n) => n.endsWith("data.pkl"))) throw new Error(`${file}: a PyTorch torch.save checkpoint (a zip of pickles: ${listed}) — cxr does not unpickle; save the state dict with safetensors.torch.save_file and import that`);
  if (!zip["config.json"]) throw new Error(`${file}: zip without config.json — not a Keras .keras archive (entries: ${listed || "none"})`);
  if (!zip[WEIGHTS_ENTRY]) throw new Error(`${file}: a .keras archive without ${WEIGHTS_ENTRY} — it holds the architecture only, no weights (entries: ${listed})`);
  const config = json(file, "config.json", zip["config.json"]);
  const metadata = zip["metadata.json"] ? json(file, "metadata.json", zip["metadata.json"]) : {};
  const layers = allLayers((config.config as LayerConfig["config"])?.layers);
  const denses = layers.filter((l) => l.class_name === "Dense");

  const dir = mkdtempSync(join(tmpdir(), "cxr-keras-"));
  try {
    const h5 = join(dir, WEIGHTS_ENTRY);
    writeFileSync(h5, zip[WEIGHTS_ENTRY]);
    const weights = await readKerasHdf5(h5, `${file}: ${WEIGHTS_ENTRY}`);
    return {
      ...weights,
      form: "full-model",
      kerasVersion: typeof metadata.keras_version === "string" ? metadata.keras_version : weights.kerasVersion,
      inputSize: squareInput(layers),
      headActivation: denses.length === 1 ? denses[0]!.config?.activation : undefined,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
