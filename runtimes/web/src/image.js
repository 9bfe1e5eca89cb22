// Showing an image: the uint8 conversion of export/run.py's to_uint8 and a canvas upscaled
// without smoothing (the model is 32x32; interpolation would invent detail).

/** (1, 3, H, W) in [-1, 1] -> RGBA bytes (H, W, 4), the rounding of export/run.py's to_uint8. */
export function toRGBA(image, height, width) {
  const rgba = new Uint8ClampedArray(height * width * 4);
  const plane = height * width;
  for (let c = 0; c < 3; c++) {
    for (let p = 0; p < plane; p++) rgba[4 * p + c] = toUint8(image[c * plane + p]);
  }
  for (let p = 0; p < plane; p++) rgba[4 * p + 3] = 255;
  return rgba;
}

/**
 * round((clip(x, -1, 1) + 1) * 127.5) in float32 arithmetic with round-half-to-even, as NumPy
 * computes it on a float32 array (Math.fround after each operation; np.round is half-to-even).
 */
export function toUint8(x) {
  const c = Math.min(Math.max(x, -1), 1);
  const v = Math.fround(Math.fround(c + 1) * 127.5);
  const f = Math.floor(v);
  const d = v - f;
  return d > 0.5 || (d === 0.5 && f % 2 === 1) ? f + 1 : f;
}

/** Draw a (1, 3, H, W) image on ``canvas``, nearest-neighbour upscaled to the canvas size; returns the RGBA bytes. */
export function drawImage(canvas, image, height, width) {
  const rgba = toRGBA(image, height, width);
  const small = document.createElement("canvas");
  small.width = width;
  small.height = height;
  small.getContext("2d").putImageData(new ImageData(rgba, width, height), 0, 0);
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(small, 0, 0, canvas.width, canvas.height);
  return rgba;
}
