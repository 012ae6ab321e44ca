import { join } from "node:path";
import { loadPresentationImage, type PresentationImage } from "../../src/image/presentation.ts";
import { Classifier, type InferenceResult } from "../../src/inference/classifier.ts";
import { initModelDir } from "../../src/model/model-dir.ts";
import type { MapSelection } from "../../src/results/pm/selection.ts";
import { writeResultObjects, type WrittenResultObjects } from "../../src/results/write.ts";
import { SHARED_DICOM } from "../helpers/shared-data.ts";

/** One shared DICOM file through a real (seeded, untrained) DenseNet121-14 and the result writers. */
export interface RealCase {
  file: string;
  path: string;
  image: PresentationImage;
  result: InferenceResult;
  written: WrittenResultObjects;
}

/**
 * Each of `files` (in ../shared/data/dicom) read, inferred by a 96 px DenseNet121-14 made in `dir`
 * and written as result objects into `dir/out`; `mapSelection(file)` picks its Parametric Maps
 * (the writer's default when it says nothing).
 */
export async function realCases(files: string[], dir: string, mapSelection: (file: string) => MapSelection | undefined = () => undefined): Promise<RealCase[]> {
  const modelDir = join(dir, "model");
  initModelDir({ inputSize: 96, seed: 7, out: modelDir });
  const classifier = await Classifier.load(modelDir);
  const cases: RealCase[] = [];
  try {
    for (const file of files) {
      const path = join(SHARED_DICOM, file);
      const image = await loadPresentationImage(path);
      const result = await classifier.infer(image);
      const written = writeResultObjects({ sourcePath: path, image, result, outDir: join(dir, "out"), basename: file.replace(/\.dcm$/, ""), mapSelection: mapSelection(file) });
      cases.push({ file, path, image, result, written });
    }
  } finally {
    await classifier.close();
  }
  return cases;
}
