package dev.guardsdk.core;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The decision on one input, as the Python Verdict: the highest window's P(unsafe) against the threshold, each
 * category's highest P(category) over the windows, and the violations a policy enforces.
 */
public final class Verdict {
  public final boolean unsafe;
  public final double score;
  public final double threshold;
  public final String label;
  public final int windows;
  /** Each category the bundle scores and its score, in the manifest's order (empty without categories). */
  public final Map<String, Double> categories;
  /** The enforced categories at or over their thresholds, most confident first. */
  public final List<String> violations;
  /** The view of the text whose window decided: "raw", "normalized", "decoded" or "payload" (TextViews). */
  public final String view;

  private Verdict(boolean unsafe, double score, double threshold, String label, int windows,
      Map<String, Double> categories, List<String> violations, String view) {
    this.unsafe = unsafe;
    this.score = score;
    this.threshold = threshold;
    this.label = label;
    this.windows = windows;
    this.categories = Collections.unmodifiableMap(categories);
    this.violations = violations;
    this.view = view;
  }

  /** Softmax over one window's two label logits (the first two), in double, and its unsafe entry. */
  public static double unsafeProbability(float[] logits, int unsafeIndex) {
    double max = Math.max(logits[0], logits[1]);
    double sum = Math.exp(logits[0] - max) + Math.exp(logits[1] - max);
    return Math.exp(logits[unsafeIndex] - max) / sum;
  }

  /** P(category) of a logit: its sigmoid, in double (guard.category_probability). */
  public static double categoryProbability(float logit) {
    return 1.0 / (1.0 + Math.exp(-(double) logit));
  }

  /** The verdict with no policy: unsafe when the highest score >= threshold. */
  public static Verdict of(float[][] windowLogits, Manifest manifest, double threshold) throws GuardException {
    return of(windowLogits, manifest, threshold, Policy.NONE);
  }

  /** The verdict on an input whose windows, all of the raw text, gave {@code windowLogits}, under {@code policy}. */
  public static Verdict of(float[][] windowLogits, Manifest manifest, double threshold, Policy policy)
      throws GuardException {
    String[] views = new String[windowLogits.length];
    java.util.Arrays.fill(views, "raw");
    return of(windowLogits, views, manifest, threshold, policy);
  }

  /**
   * The verdict on an input whose windows ({@link TextEncoder#scoredWindows}, of the views {@code windowViews})
   * gave {@code windowLogits}, under {@code policy}; its view is that of the first most unsafe window.
   */
  public static Verdict of(float[][] windowLogits, String[] windowViews, Manifest manifest, double threshold,
      Policy policy) throws GuardException {
    if (windowLogits.length == 0) {
      throw new GuardException(GuardException.Reason.INPUT, "no window was scored");
    }
    if (!(threshold >= 0 && threshold <= 1)) {
      throw new GuardException(GuardException.Reason.INPUT, "threshold must lie in [0, 1], got " + threshold);
    }
    double best = -1;
    Map<String, Double> categories = new LinkedHashMap<>();
    for (Manifest.Category c : manifest.categories) {
      categories.put(c.name, 0.0);
    }
    String view = windowViews[0];
    for (int w = 0; w < windowLogits.length; w++) {
      float[] logits = windowLogits[w];
      if (logits.length != 2 + manifest.categories.size()) {
        throw new GuardException(GuardException.Reason.MANIFEST, "guard.json lists " + manifest.categories.size()
            + " categories, but the model outputs " + logits.length + " logits");
      }
      double p = unsafeProbability(logits, manifest.unsafeIndex);
      // A NaN window (an overflowing or broken model) makes the score NaN and so the verdict unsafe, as numpy's
      // maximum does in the Python runtime: the guard fails closed.
      if (p > best || (Double.isNaN(p) && !Double.isNaN(best))) {
        best = p;
        view = windowViews[w];
      }
      for (Manifest.Category c : manifest.categories) {
        categories.put(c.name, Math.max(categories.get(c.name), categoryProbability(logits[c.index])));
      }
    }
    Policy.Decision decision = policy.decide(best, threshold, categories, manifest);
    String label = manifest.labels.get(decision.unsafe ? manifest.unsafeIndex : 1 - manifest.unsafeIndex);
    return new Verdict(decision.unsafe, best, threshold, label, windowLogits.length, categories,
        decision.violations, view);
  }
}
