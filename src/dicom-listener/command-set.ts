/**
 * The fields of a DIMSE command set (PS3.7 E.1) the listener acts on, read straight from its bytes.
 * Command sets are always Implicit VR Little Endian (PS3.7 6.3.1): group 0000 elements, each a
 * 4-byte tag, a 4-byte length and the value. Read here rather than by dcmjs-dimse, which parses
 * every command into a dcmjs dataset (about 0.4 ms per C-STORE on the bench machine, on the way to
 * every answer); only C-STORE-RQ is read this way, every other command still goes to dcmjs-dimse.
 */

/** Command Field values (PS3.7 E.1-1). */
export const COMMAND_FIELD = { cStoreRq: 0x0001, cEchoRq: 0x0030 } as const;
/** Command Data Set Type: no data set follows. */
export const NO_DATA_SET = 0x0101;

export interface CommandSet {
  commandField?: number;
  messageId?: number;
  affectedSopClassUid?: string;
  affectedSopInstanceUid?: string;
  /** Whether a data set follows (Command Data Set Type other than 0101H). */
  hasDataSet: boolean;
}

/** UI values are padded with NUL (sometimes, wrongly, a space) to an even length. */
const uid = (b: Buffer) => b.toString("latin1").replace(/[\0 ]+$/, "");

export function parseCommandSet(bytes: Buffer): CommandSet {
  const out: CommandSet = { hasDataSet: false };
  let dataSetType: number | undefined;
  for (let at = 0; at < bytes.length; ) {
    if (at + 8 > bytes.length) throw new Error(`command set: truncated element header at byte ${at} of ${bytes.length}`);
    const group = bytes.readUInt16LE(at);
    const element = bytes.readUInt16LE(at + 2);
    const length = bytes.readUInt32LE(at + 4);
    if (group !== 0x0000) throw new Error(`command set: element (${group.toString(16).padStart(4, "0")},${element.toString(16).padStart(4, "0")}) outside group 0000`);
    if (at + 8 + length > bytes.length) throw new Error(`command set: element (0000,${element.toString(16).padStart(4, "0")}) of ${length} bytes overruns the ${bytes.length}-byte command`);
    const value = bytes.subarray(at + 8, at + 8 + length);
    const us = () => {
      if (length !== 2) throw new Error(`command set: (0000,${element.toString(16).padStart(4, "0")}) is US but has ${length} bytes`);
      return value.readUInt16LE(0);
    };
    if (element === 0x0002) out.affectedSopClassUid = uid(value);
    else if (element === 0x0100) out.commandField = us();
    else if (element === 0x0110) out.messageId = us();
    else if (element === 0x0800) dataSetType = us();
    else if (element === 0x1000) out.affectedSopInstanceUid = uid(value);
    at += 8 + length;
  }
  out.hasDataSet = dataSetType !== undefined && dataSetType !== NO_DATA_SET;
  return out;
}
