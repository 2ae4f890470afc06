/**
 * What the pipeline needs of a camera, whatever produces its frames.
 *
 * @module
 */
import type { CameraStatus, Frame } from "../core/frame.ts";

/** A source of frames at the model's input size, with status and counters. */
export interface Camera extends AsyncDisposable {
  readonly name: string;
  /** Frames in capture order; closes when the camera is disposed. */
  readonly readable: ReadableStream<Frame>;
  status(): CameraStatus;
}
