package dev.guardsdk.core;

/** The decision on one input: the highest window's P(unsafe) against the threshold, as the Python Verdict. */
public final class Verdict {
  public final boolean unsafe;
  public final double score;
  public final double threshold;
  public final String label;
  public final int windows;

  private Verdict(boolean unsafe, double score, double threshold, String label, int windows) {
    this.unsafe = unsafe;
    this.score = score;
    this.threshold = threshold;
    this.label = label;
    this.windows = windows;
  }

  /** Softmax over one window's label logits, in double, and its unsafe entry (guard.unsafe_probability). */
  public static double unsafeProbability(float[] logits, int unsafeIndex) {
    double max = Double.NEGATIVE_INFINITY;
    for (float z : logits) {
      max = Math.max(max, z);
    }
    double sum = 0;
    for (float z : logits) {
      sum += Math.exp(z - max);
    }
    return Math.exp(logits[unsafeIndex] - max) / sum;
  }

  /** The verdict on an input whose windows gave {@code windowLogits}: unsafe when the highest score >= threshold. */
  public static Verdict of(float[][] windowLogits, Manifest manifest, double threshold) throws GuardException {
    if (windowLogits.length == 0) {
      throw new GuardException(GuardException.Reason.INPUT, "no window was scored");
    }
    if (!(threshold >= 0 && threshold <= 1)) {
      throw new GuardException(GuardException.Reason.INPUT, "threshold must lie in [0, 1], got " + threshold);
    }
    double best = -1;
    for (float[] logits : windowLogits) {
      best = Math.max(best, unsafeProbability(logits, manifest.unsafeIndex));
    }
    boolean unsafe = best >= threshold;
    String label = manifest.labels.get(unsafe ? manifest.unsafeIndex : 1 - manifest.unsafeIndex);
    return new Verdict(unsafe, best, threshold, label, windowLogits.length);
  }
}
