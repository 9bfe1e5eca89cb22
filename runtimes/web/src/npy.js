// A small reader for NumPy .npy files (format 1.0-3.0): little-endian float32, int64 and int32,
// C order; what a bundle's test_vectors/ holds. Anything else is refused with the reason.

const DTYPES = {
  "<f4": ["float32", Float32Array],
  "<i8": ["int64", BigInt64Array],
  "<i4": ["int32", Int32Array],
};

/** Parse an .npy file (an ArrayBuffer or a view of one): returns {dtype, shape, data} (data a typed array of its own). */
export function parseNpy(buffer, name = "array") {
  const bytes = ArrayBuffer.isView(buffer) ? new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength) : new Uint8Array(buffer);
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
  if (bytes.length < 10 || magic.some((b, i) => bytes[i] !== b)) throw new Error(`${name}: not an .npy file`);
  const major = bytes[6];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLen, start;
  if (major === 1) [headerLen, start] = [view.getUint16(8, true), 10];
  else if (major === 2 || major === 3) [headerLen, start] = [view.getUint32(8, true), 12];
  else throw new Error(`${name}: .npy format version ${major} is not supported`);
  const header = new TextDecoder(major === 3 ? "utf-8" : "latin1").decode(bytes.subarray(start, start + headerLen));
  const descr = /'descr'\s*:\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) throw new Error(`${name}: bad .npy header ${header}`);
  if (!(descr in DTYPES)) throw new Error(`${name}: dtype ${descr} is not supported (little-endian float32/int64/int32 only)`);
  if (fortran === "True") throw new Error(`${name}: Fortran-order arrays are not supported`);
  const shape = shapeText.split(",").map((s) => s.trim()).filter((s) => s.length).map(Number);
  const [dtype, Typed] = DTYPES[descr];
  const count = shape.reduce((a, b) => a * b, 1);
  const offset = start + headerLen;
  const nbytes = count * Typed.BYTES_PER_ELEMENT;
  if (offset + nbytes > bytes.length) throw new Error(`${name}: truncated (${bytes.length - offset} of ${nbytes} data bytes)`);
  // Copy: the data offset need not be aligned for the typed array, and the array owns its memory.
  const data = new Typed(bytes.slice(offset, offset + nbytes).buffer);
  return { dtype, shape, data };
}
