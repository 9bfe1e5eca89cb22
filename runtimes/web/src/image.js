// Showing the plan's pixels: the decoder already gives 8-bit RGB (1, H, W, 3), so this only adds
// alpha and draws a canvas upscaled without smoothing (interpolation would invent detail).

/** (1, H, W, 3) 8-bit RGB values -> RGBA bytes (H, W, 4). */
export function toRGBA(pixels, height, width) {
  const rgba = new Uint8ClampedArray(height * width * 4);
  for (let p = 0; p < height * width; p++) {
    rgba.set([pixels[3 * p], pixels[3 * p + 1], pixels[3 * p + 2], 255], 4 * p);
  }
  return rgba;
}

/** Draw pixels on ``canvas``, nearest-neighbour upscaled to the canvas size; returns the RGBA bytes. */
export function drawImage(canvas, pixels, height, width) {
  const rgba = toRGBA(pixels, height, width);
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
