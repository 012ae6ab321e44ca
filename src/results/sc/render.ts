import { existsSync } from "node:fs";
import { createCanvas, GlobalFonts, ImageData } from "@napi-rs/canvas";
import type { PresentationImage } from "../../image/presentation.ts";
import { resizeGray } from "../../image/resize.ts";
import { upsampleHeatmap, type Heatmap } from "../../inference/classifier.ts";

/** The longer side of a capture: enough to read the overlay, small enough to export fast (≈3 MB RGB). */
export const CAPTURE_MAX_SIZE = 1024;
/** Heat h in [0,1] is blended with opacity HEAT_OPACITY·h: cold (h = 0) shows the plain image. */
export const HEAT_OPACITY = 0.6;
/** The burned-in text is drawn with this TTF (Debian fonts-dejavu-core, installed by scripts/setup.sh). */
export const FONT_PATH = process.env.CXR_FONT ?? "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
const FONT_FAMILY = "CXR Capture Sans";

export interface CaptureLine { text: string; color: string }
export interface RgbImage { width: number; height: number; /** RGB, 8 bits per sample, pixel-interleaved; the whole of its buffer. */ rgb: Uint8Array<ArrayBuffer> }

let fontRegistered = false;
function ensureFont(): void {
  if (fontRegistered) return;
  if (!existsSync(FONT_PATH)) {
    throw new Error(`font ${FONT_PATH} not found: burned-in annotations need a TTF (install fonts-dejavu-core, or set CXR_FONT to a .ttf file)`);
  }
  if (!GlobalFonts.registerFromPath(FONT_PATH, FONT_FAMILY)) throw new Error(`font ${FONT_PATH} could not be loaded by @napi-rs/canvas`);
  fontRegistered = true;
}

/** The size a capture of a width x height image gets: downscaled so the longer side is at most CAPTURE_MAX_SIZE. */
export function captureSize(width: number, height: number): { width: number; height: number } {
  const scale = Math.min(1, CAPTURE_MAX_SIZE / Math.max(width, height));
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}

const clamp01 = (v: number) => (v < 0 ? 0 : v > 1 ? 1 : v);

/** Jet colour map, t in [0,1] → RGB in [0,1] (blue → cyan → yellow → red). */
export function jet(t: number): [number, number, number] {
  return [clamp01(1.5 - Math.abs(4 * t - 3)), clamp01(1.5 - Math.abs(4 * t - 2)), clamp01(1.5 - Math.abs(4 * t - 1))];
}

/** Jet colours and blend opacities for heat quantized to 256 levels (finer than 8-bit output can show). */
const LEVELS = 256;
const JET_LUT = new Float32Array(LEVELS * 3);
for (let k = 0; k < LEVELS; k++) JET_LUT.set(jet(k / (LEVELS - 1)).map((c) => c * 255), 3 * k);

/** Presentation values [0,1] at capture size. */
export interface CaptureBackground { width: number; height: number; data: Float32Array }

/** The presentation image downscaled to captureSize: done once per source image, shared by all its captures. */
export function captureBackground(image: PresentationImage): CaptureBackground {
  const { width, height } = captureSize(image.width, image.height);
  return { width, height, data: resizeGray(image.data, image.width, image.height, width, height) };
}

/**
 * The capture background with its heatmap (if any) blended over it in jet with opacity proportional
 * to heat, and `lines` of text burned into a banner at the top.
 */
export function renderCapture(background: CaptureBackground, heatmap: Heatmap | undefined, lines: CaptureLine[]): RgbImage {
  ensureFont();
  const { width, height, data: gray } = background;
  const heat = heatmap ? upsampleHeatmap(heatmap, width, height) : undefined;
  const rgba = new Uint8ClampedArray(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    const g = clamp01(gray[i]!) * 255;
    let r = g, gg = g, b = g;
    if (heat) {
      const k = Math.round(clamp01(heat[i]!) * (LEVELS - 1));
      const a = (HEAT_OPACITY * k) / (LEVELS - 1);
      r = (1 - a) * g + a * JET_LUT[3 * k]!;
      gg = (1 - a) * g + a * JET_LUT[3 * k + 1]!;
      b = (1 - a) * g + a * JET_LUT[3 * k + 2]!;
    }
    rgba[4 * i] = r; rgba[4 * i + 1] = gg; rgba[4 * i + 2] = b; rgba[4 * i + 3] = 255;
  }

  const canvas = createCanvas(width, height);
  const ctx = canvas.getContext("2d");
  ctx.putImageData(new ImageData(rgba, width, height), 0, 0);

  const pad = Math.max(4, Math.round(width / 100));
  const baseSize = Math.min(28, Math.max(10, Math.round(width / 42)));
  const sizes = lines.map((line) => {
    let size = baseSize;
    for (; size > 6; size--) {
      ctx.font = `${size}px "${FONT_FAMILY}"`;
      if (ctx.measureText(line.text).width <= width - 2 * pad) break;
    }
    return size;
  });
  const bannerHeight = pad + sizes.reduce((s, size) => s + Math.round(size * 1.3), 0) + pad;
  ctx.fillStyle = "rgba(0, 0, 0, 0.7)";
  ctx.fillRect(0, 0, width, Math.min(height, bannerHeight));
  ctx.textBaseline = "top";
  let y = pad;
  lines.forEach((line, k) => {
    ctx.font = `${sizes[k]}px "${FONT_FAMILY}"`;
    ctx.fillStyle = line.color;
    ctx.fillText(line.text, pad, y);
    y += Math.round(sizes[k]! * 1.3);
  });

  const out = ctx.getImageData(0, 0, width, height).data;
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; i < out.length; i += 4, j += 3) {
    rgb[j] = out[i]!; rgb[j + 1] = out[i + 1]!; rgb[j + 2] = out[i + 2]!;
  }
  return { width, height, rgb };
}
