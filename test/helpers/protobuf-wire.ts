/**
 * The protobuf wire format, written by hand for test models (no onnx package in Node): fields of
 * varints and length-delimited bytes, nested messages as length-delimited fields.
 */

function varint(value: number): Buffer {
  const bytes: number[] = [];
  let v = BigInt(value);
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    bytes.push(byte);
  } while (v > 0n);
  return Buffer.from(bytes);
}

// field * 8 rather than a shift: no 32-bit overflow for any field number.
const key = (field: number, wireType: number) => varint(field * 8 + wireType);
export const int = (field: number, value: number) => Buffer.concat([key(field, 0), varint(value)]);
export const bytesField = (field: number, value: Buffer) =>
  Buffer.concat([key(field, 2), varint(value.length), value]);
export const str = (field: number, value: string) => bytesField(field, Buffer.from(value));
/** A length-delimited field holding the concatenated `parts`: a nested message. */
export const msg = (field: number, ...parts: Buffer[]) => bytesField(field, Buffer.concat(parts));
