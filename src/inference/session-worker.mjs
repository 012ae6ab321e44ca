// One ONNX Runtime session in a worker thread. onnxruntime-node's `run` executes synchronously on the
// calling thread, so sessions in the main thread cannot overlap; a pool of these workers can.
// Plain JavaScript so that it starts without the TypeScript loader the main thread uses.
import { parentPort, workerData } from "node:worker_threads";
import * as ort from "onnxruntime-node";

const { model, options, inputName, outputNames } = workerData;
let session;
try {
  session = await ort.InferenceSession.create(model, options);
  parentPort.postMessage({ type: "ready" });
} catch (err) {
  parentPort.postMessage({ type: "error", message: err instanceof Error ? err.message : String(err) });
}

parentPort.on("message", async (msg) => {
  if (msg.type === "close") {
    await session?.release();
    parentPort.close();
    return;
  }
  try {
    const out = await session.run({ [inputName]: new ort.Tensor("float32", msg.input, msg.dims) }, outputNames);
    const outputs = {};
    const transfer = [];
    for (const [name, t] of Object.entries(out)) {
      const data = new Float32Array(t.data);
      outputs[name] = { data, dims: [...t.dims] };
      transfer.push(data.buffer);
    }
    parentPort.postMessage({ type: "result", id: msg.id, outputs }, transfer);
  } catch (err) {
    parentPort.postMessage({ type: "result", id: msg.id, error: err instanceof Error ? err.message : String(err) });
  }
});
