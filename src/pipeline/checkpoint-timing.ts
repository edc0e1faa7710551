/**
 * Longest time between two checkpoints of a download (an HLS track, an MP4 part file). A checkpoint
 * per write would cost a file write per segment or piece (20,000 on long streams); every CHECKPOINT_MS
 * bounds what a crash makes us fetch again to what came in during that interval.
 */
export const CHECKPOINT_MS = 200;
