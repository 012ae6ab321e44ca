/**
 * A bare C-STORE receiver for bench/ingest's floor rows: how fast can ANY receiver on this machine go
 * when it makes each instance durable before it answers, doing nothing else? It accepts every
 * presentation context, writes each dataset as it arrives and answers success — no DICOM parsing
 * beyond the command fields the answer echoes (read as the listener reads them), no header checks,
 * no SQLite, no dcmjs-dimse. Not a
 * product component (it checks nothing a real listener must check); only a yardstick.
 *
 * Modes:
 *  - "discard": writes nothing (what the sender and the network allow; storescp is close to this);
 *  - "file": the smallest durable per-instance file — create, write, fdatasync, rename into a
 *    folder, fsync the folder (what cxr's spool does, minus everything else);
 *  - "log": appends into a preallocated, zero-filled, already-fsynced log and fdatasyncs it (no
 *    file system metadata changes at all: only the data itself is flushed), the cheapest durable
 *    write there is on a file system.
 */
import { closeSync, fdatasync, fsync, mkdirSync, openSync, renameSync, writeSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { parseCommandSet } from "../src/dicom-listener/command-set.ts";
import { PDU_TYPE, PduReader, splitPDataTf } from "../src/dicom-listener/pdu-reader.ts";
import { encodeStoreResponsePdu } from "../src/dicom-listener/store-response.ts";

export type BareMode = "discard" | "file" | "log";
const fdatasyncAsync = promisify(fdatasync);
const fsyncAsync = promisify(fsync);

function item(type: number, body: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head[0] = type;
  head.writeUInt16BE(body.length, 2);
  return Buffer.concat([head, body]);
}

/** A-ASSOCIATE-AC (PS3.8 9.3.3) accepting every proposed context with its first transfer syntax. */
function associateAccept(rq: Buffer): Buffer {
  const items: Buffer[] = [item(0x10, Buffer.from("1.2.840.10008.3.1.1.1"))];
  for (let at = 74; at + 4 <= rq.length; ) {
    const type = rq[at]!;
    const length = rq.readUInt16BE(at + 2);
    const body = rq.subarray(at + 4, at + 4 + length);
    if (type === 0x20) {
      let firstSyntax: Buffer | undefined;
      for (let p = 4; p + 4 <= body.length && !firstSyntax; ) {
        const sub = body[p]!;
        const subLength = body.readUInt16BE(p + 2);
        if (sub === 0x40) firstSyntax = body.subarray(p + 4, p + 4 + subLength);
        p += 4 + subLength;
      }
      items.push(item(0x21, Buffer.concat([Buffer.from([body[0]!, 0, 0, 0]), item(0x40, firstSyntax ?? Buffer.alloc(0))])));
    }
    at += 4 + length;
  }
  const maxLength = Buffer.alloc(4);
  maxLength.writeUInt32BE(262144);
  items.push(item(0x50, Buffer.concat([item(0x51, maxLength), item(0x52, Buffer.from("1.2.826.0.1.3680043.10.1.99"))])));
  const body = Buffer.concat(items);
  const head = Buffer.alloc(74);
  head[0] = PDU_TYPE.associateAc;
  head.writeUInt32BE(68 + body.length, 2);
  head.writeUInt16BE(1, 6);
  rq.copy(head, 10, 10, 74); // called + calling AE titles and the reserved field, as proposed
  return Buffer.concat([head, body]);
}

export interface BareReceiver {
  port: number;
  received(): number;
  close(): Promise<void>;
}

export async function startBareReceiver(mode: BareMode, dir: string, logBytes = 0): Promise<BareReceiver> {
  mkdirSync(join(dir, "in"), { recursive: true });
  mkdirSync(join(dir, "done"), { recursive: true });
  let log: number | undefined;
  let logAt = 0;
  if (mode === "log") {
    // Preallocated by writing zeros and fsyncing, so that later writes change no metadata.
    log = openSync(join(dir, "instances.log"), "w+");
    const zeros = Buffer.alloc(1 << 20);
    for (let at = 0; at < logBytes; at += zeros.length) writeSync(log, zeros, 0, zeros.length, at);
    await fsyncAsync(log);
  }
  let received = 0;
  let serial = 0;
  const server: Server = createServer({ noDelay: true }, (socket) => {
    let command: Buffer[] = [];
    let fields = parseCommandSet(Buffer.alloc(0));
    let fd: number | undefined;
    let name = "";
    const reader = new PduReader(
      (type, pdu) => {
        if (type === PDU_TYPE.associateRq) return void socket.write(associateAccept(pdu));
        if (type === PDU_TYPE.releaseRq) return void socket.end(Buffer.from([PDU_TYPE.releaseRp, 0, 0, 0, 0, 4, 0, 0, 0, 0]));
        if (type !== PDU_TYPE.pDataTf) return void socket.destroy();
        for (const pdv of splitPDataTf(pdu)) {
          const value = pdv.getValue();
          if (pdv.isCommand()) {
            command.push(value);
            if (!pdv.isLastFragment()) continue;
            fields = parseCommandSet(Buffer.concat(command));
            command = [];
            if (mode === "file") {
              name = `${serial++}.dcm`;
              fd = openSync(join(dir, "in", name), "w");
            }
            continue;
          }
          if (fd !== undefined) writeSync(fd, value);
          else if (log !== undefined) {
            writeSync(log, value, 0, value.length, logAt);
            logAt += value.length;
          }
          if (!pdv.isLastFragment()) continue;
          const answer = encodeStoreResponsePdu({
            presentationContextId: pdv.getPresentationContextId(),
            messageIdBeingRespondedTo: fields.messageId ?? 0,
            affectedSopClassUid: fields.affectedSopClassUid ?? "",
            affectedSopInstanceUid: fields.affectedSopInstanceUid ?? "",
            status: 0,
          });
          const file = fd;
          fd = undefined;
          const durable =
            file !== undefined
              ? (() => {
                  renameSync(join(dir, "in", name), join(dir, "done", name));
                  const folder = openSync(join(dir, "done"), "r");
                  return Promise.all([fdatasyncAsync(file), fsyncAsync(folder)]).then(() => {
                    closeSync(file);
                    closeSync(folder);
                  });
                })()
              : log !== undefined
                ? fdatasyncAsync(log)
                : Promise.resolve();
          void durable.then(() => {
            received++;
            socket.write(answer);
          });
        }
      },
      () => socket.destroy(),
    );
    socket.on("data", (chunk: Buffer) => reader.push(chunk));
    socket.on("error", () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  return {
    port: typeof address === "object" && address ? address.port : 0,
    received: () => received,
    close: () =>
      new Promise<void>((resolve) =>
        server.close(() => {
          if (log !== undefined) closeSync(log);
          resolve();
        }),
      ),
  };
}
