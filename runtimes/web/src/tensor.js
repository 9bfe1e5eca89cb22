// A bundle's reference tensors: raw little-endian C-order files, each described by the
// manifest's "tensors" (dtype, shape) and hashed in "files". The file must hold exactly
// numel * itemsize bytes; anything else is one line naming the file.

export const TYPED = { float32: Float32Array, int32: Int32Array, uint8: Uint8Array };

/** {dtype, shape, data} of the raw bytes ``buffer`` for ``spec`` ({file, dtype, shape}). */
export function parseTensor(buffer, spec) {
  const Typed = TYPED[spec.dtype];
  if (!Typed) throw new Error(`tensor ${spec.file}: dtype ${spec.dtype} is not float32, int32 or uint8; re-export the bundle`);
  const count = spec.shape.reduce((a, b) => a * b, 1);
  const bytes = ArrayBuffer.isView(buffer) ? buffer : new Uint8Array(buffer);
  if (bytes.byteLength !== count * Typed.BYTES_PER_ELEMENT) {
    throw new Error(`bundle tensor ${spec.file} holds ${bytes.byteLength} bytes, its spec ${spec.dtype}[${spec.shape}] needs ` +
                    `${count * Typed.BYTES_PER_ELEMENT}; re-export the bundle`);
  }
  // Copy: the bytes need not be aligned for the typed array, and the array owns its memory.
  const data = new Typed(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength).slice().buffer);
  return { dtype: spec.dtype, shape: spec.shape, data };
}
