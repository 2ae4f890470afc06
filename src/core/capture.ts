/**
 * How a camera's frames reach the model's input size, shared by the pipeline file (which
 * states it per camera) and the ingest stage (which does it): the crop ({@linkcode Roi})
 * and where resizing happens ({@linkcode ResizeMode}).
 *
 * @module
 */

/**
 * Where frames are resized to the model's input size:
 *
 * - `"ffmpeg"`: inside ffmpeg with `scale=W:H:flags=bilinear`. Cheapest, but swscale's
 *   bilinear averages over the source footprint when downscaling, so pixels differ from
 *   PyTorch's `F.interpolate(mode="bilinear")` that anomalib calibrates with (not
 *   bit-exact: thresholds may shift).
 * - `"exact"`: ffmpeg only crops and caps the frame rate, writing frames at source (or ROI)
 *   size, and the ingest resizes them with PyTorch-exact bilinear (what anomalib's export
 *   does). Costs CPU in Deno: about one float conversion per source pixel.
 */
export type ResizeMode = "ffmpeg" | "exact";

/** A region of interest in source pixels: the frame is cropped to it before resizing. */
export interface Roi {
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
}
