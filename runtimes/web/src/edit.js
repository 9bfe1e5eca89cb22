// What a user gives an edit: an input image and an inpainting mask, as the plan's ``image`` (8-bit
// RGB, (1, H, W, 3)) and ``mask`` (0 keep / 1 regenerate, (1, 1, H, W)) inputs. The same rules as
// lrf_model/editing.py: an image of another size is resized to the model's with a note, a mask
// must have its image's size, and a mask pixel brighter than mid-grey (luma > 127) regenerates.
// The mask can also be painted on a canvas (MaskPainter). No pixel arithmetic of the model is here:
// the plan's graphs encode, blend and paste.

/** Decode an image file's pixels as they are (no colour conversion): {width, height, rgba}. */
async function decode(file) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
  } catch {
    throw new Error(`${file.name} is not a readable image; pick a PNG or JPEG file`);
  }
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const ctx = canvas.getContext("2d");
  ctx.drawImage(bitmap, 0, 0);
  return { bitmap, width: bitmap.width, height: bitmap.height, rgba: ctx.getImageData(0, 0, bitmap.width, bitmap.height).data };
}

/** RGBA bytes -> RGB bytes. */
function rgbOf(rgba) {
  const rgb = new Uint8Array((rgba.length / 4) * 3);
  for (let p = 0; p < rgba.length / 4; p++) rgb.set([rgba[4 * p], rgba[4 * p + 1], rgba[4 * p + 2]], 3 * p);
  return rgb;
}

/**
 * An input image at the model's ``side``: {pixels (side*side*3 RGB), width, height, note}. An image
 * of another size is resized (the browser's high-quality filter; Python's is bicubic, so a resized
 * input is not bit-identical to lrf-generate's) and ``note`` says so.
 */
export async function imageFromFile(file, side) {
  const im = await decode(file);
  if (im.width === side && im.height === side) return { pixels: rgbOf(im.rgba), width: im.width, height: im.height, note: null };
  const canvas = new OffscreenCanvas(side, side);
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(im.bitmap, 0, 0, side, side);
  return { pixels: rgbOf(ctx.getImageData(0, 0, side, side).data), width: im.width, height: im.height,
           note: `note: image resized from ${im.width}x${im.height} to ${side}x${side}, the model's size` };
}

/**
 * A mask file for an image of ``imageSize`` ({width, height}, before any resize): Float32Array
 * side*side of 0/1. A mask drawn for another picture is refused rather than stretched onto this one.
 */
export async function maskFromFile(file, imageSize, side) {
  const im = await decode(file);
  if (im.width !== imageSize.width || im.height !== imageSize.height) {
    throw new Error(`the mask is ${im.width}x${im.height} but the image is ${imageSize.width}x${imageSize.height}; draw the mask at the image's size`);
  }
  const mask = new Float32Array(side * side);
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      // Nearest pixel of the mask (PIL's NEAREST for a resized mask), ITU-R 601 luma as PIL's "L".
      const sx = Math.floor(((x + 0.5) * im.width) / side);
      const sy = Math.floor(((y + 0.5) * im.height) / side);
      const i = 4 * (sy * im.width + sx);
      const luma = (im.rgba[i] * 299 + im.rgba[i + 1] * 587 + im.rgba[i + 2] * 114) / 1000;
      mask[y * side + x] = luma > 127 ? 1 : 0;
    }
  }
  return mask;
}

/**
 * A mask painted on a canvas over the input image: pointer strokes set the image pixels within
 * ``brush`` (a radius in image pixels) to 1 (regenerate); ``clear()`` resets it. The canvas shows
 * the image upscaled without smoothing and the mask as a translucent red overlay.
 */
export class MaskPainter {
  constructor(canvas, side, onChange = () => {}) {
    this.canvas = canvas;
    this.side = side;
    this.mask = new Float32Array(side * side);
    this.image = null; // RGB bytes (side*side*3) shown under the mask
    this.brush = 2;
    this.onChange = onChange;
    let painting = false;
    const paint = (ev) => {
      const r = canvas.getBoundingClientRect();
      this.paintAt(((ev.clientX - r.left) / r.width) * side, ((ev.clientY - r.top) / r.height) * side);
    };
    canvas.addEventListener("pointerdown", (ev) => {
      if (!this.image) return;
      painting = true;
      canvas.setPointerCapture(ev.pointerId);
      paint(ev);
    });
    canvas.addEventListener("pointermove", (ev) => painting && paint(ev));
    canvas.addEventListener("pointerup", () => { painting = false; });
    canvas.addEventListener("pointercancel", () => { painting = false; });
  }

  /** Mark the cells within the brush around image coordinates (x, y). */
  paintAt(x, y) {
    const r = this.brush;
    for (let py = Math.floor(y - r); py <= Math.ceil(y + r); py++) {
      for (let px = Math.floor(x - r); px <= Math.ceil(x + r); px++) {
        if (px < 0 || py < 0 || px >= this.side || py >= this.side) continue;
        if ((px + 0.5 - x) ** 2 + (py + 0.5 - y) ** 2 <= r * r) this.mask[py * this.side + px] = 1;
      }
    }
    this.draw();
    this.onChange();
  }

  setImage(pixels) {
    this.image = pixels;
    this.draw();
  }

  setMask(mask) {
    this.mask = Float32Array.from(mask);
    this.draw();
    this.onChange();
  }

  clear() {
    this.mask.fill(0);
    this.draw();
    this.onChange();
  }

  /** Whether any cell is painted. */
  painted() {
    return this.mask.some((v) => v > 0);
  }

  draw() {
    const { side } = this;
    const rgba = new Uint8ClampedArray(side * side * 4);
    for (let p = 0; p < side * side; p++) {
      const [r, g, b] = this.image ? [this.image[3 * p], this.image[3 * p + 1], this.image[3 * p + 2]] : [40, 40, 40];
      const m = this.mask[p] * 0.55;
      rgba.set([r * (1 - m) + 255 * m, g * (1 - m), b * (1 - m), 255], 4 * p);
    }
    const small = new OffscreenCanvas(side, side);
    small.getContext("2d").putImageData(new ImageData(rgba, side, side), 0, 0);
    const ctx = this.canvas.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(small, 0, 0, this.canvas.width, this.canvas.height);
  }
}
