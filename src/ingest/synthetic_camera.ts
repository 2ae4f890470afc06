/**
 * A camera that needs nothing: a synthetic inspection scene (a bright ring on brushed
 * metal, sensor noise) with a defect injected for one second in every six (a dark scratch,
 * then a stain, alternately). The demo falls back to it when ffmpeg is not installed, and
 * says so.
 *
 * Backpressure: frames are generated only when the consumer reads (a pull source), paced
 * to `fps`: nothing queues, nothing is dropped here.
 *
 * @module
 */
import type { CameraState, CameraStatus, Frame } from "../core/frame.ts";
import type { Logger } from "../core/log.ts";
import type { Camera } from "./camera.ts";

/** Options of {@linkcode SyntheticCamera}. */
export interface SyntheticCameraOptions {
  readonly name: string;
  readonly width: number;
  readonly height: number;
  /** Frames per second. Default 4. */
  readonly fps?: number;
  readonly logger?: Logger;
}

/** Which defect, if any, the scene shows at a time (seconds since start). */
export function defectAt(t: number): "none" | "scratch" | "stain" {
  const cycle = Math.floor(t / 6);
  if (t - cycle * 6 < 3 || t - cycle * 6 >= 4) return "none";
  return cycle % 2 === 0 ? "scratch" : "stain";
}

function baseScene(width: number, height: number): Float32Array {
  const out = new Float32Array(width * height);
  const cx = width / 2;
  const cy = height / 2;
  const r0 = Math.min(width, height) * 0.27;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const brushed = 90 + 12 * Math.sin(y * 0.9 + Math.sin(x * 0.05) * 3);
      const r = Math.hypot(x - cx, y - cy);
      out[y * width + x] = brushed + Math.exp(-(((r - r0) / 10) ** 2)) * 120;
    }
  }
  return out;
}

/** A frame source drawn in TypeScript; see the module doc. */
export class SyntheticCamera implements Camera {
  readonly name: string;
  readonly readable: ReadableStream<Frame>;
  #width: number;
  #height: number;
  #base: Float32Array;
  #seq = 0;
  #state: CameraState = "starting";
  #lastFrameAt: number | undefined;
  #startedAt = Date.now();
  #noise = 12345;
  #closed = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #wake: (() => void) | undefined;

  constructor(options: SyntheticCameraOptions) {
    this.name = options.name;
    this.#width = options.width;
    this.#height = options.height;
    this.#base = baseScene(options.width, options.height);
    const fps = options.fps ?? 4;
    const interval = 1000 / fps;
    options.logger?.info("synthetic camera started", { camera: this.name, fps });
    this.readable = new ReadableStream<Frame>({
      pull: async (controller) => {
        if (this.#lastFrameAt !== undefined) {
          const wait = this.#lastFrameAt + interval - Date.now();
          if (wait > 0) {
            await new Promise<void>((resolve) => {
              this.#wake = resolve;
              this.#timer = setTimeout(resolve, wait);
            });
          }
        }
        if (this.#closed) {
          controller.close();
          return;
        }
        controller.enqueue(this.#frame());
      },
      cancel: () => this.#close(),
    }, { highWaterMark: 0 });
  }

  #frame(): Frame {
    const now = Date.now();
    const w = this.#width;
    const h = this.#height;
    const rgb = new Uint8Array(w * h * 3);
    const defect = defectAt((now - this.#startedAt) / 1000);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const i = y * w + x;
        let v = this.#base[i]!;
        if (
          defect === "scratch" && Math.abs(y - (0.6 * x + 0.16 * h)) < 2 && x > 0.35 * w &&
          x < 0.66 * w
        ) {
          v *= 0.35;
        } else if (defect === "stain" && Math.hypot(x - 0.7 * w, y - 0.35 * h) < 0.055 * w) {
          v = v * 0.5 + 60;
        }
        this.#noise = (Math.imul(this.#noise, 1103515245) + 12345) >>> 0;
        v += ((this.#noise >>> 16) / 65536 - 0.5) * 6;
        const c = v < 0 ? 0 : v > 255 ? 255 : v;
        rgb[i * 3] = c * 1.02 > 255 ? 255 : c * 1.02;
        rgb[i * 3 + 1] = c;
        rgb[i * 3 + 2] = c * 0.95;
      }
    }
    this.#lastFrameAt = now;
    this.#state = "online";
    return { camera: this.name, seq: this.#seq++, capturedAt: now, width: w, height: h, rgb };
  }

  status(): CameraStatus {
    return {
      camera: this.name,
      state: this.#state,
      framesIn: this.#seq,
      framesDropped: 0,
      reconnects: 0,
      stalls: 0,
      ...(this.#lastFrameAt !== undefined ? { lastFrameAt: this.#lastFrameAt } : {}),
    };
  }

  #close(): void {
    this.#closed = true;
    this.#state = "offline";
    clearTimeout(this.#timer);
    this.#wake?.();
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.#close();
    return Promise.resolve();
  }
}
