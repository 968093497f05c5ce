package dev.guardsdk.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import org.junit.jupiter.api.Test;

/** Softmax, the maximum over windows and the threshold, at their edges. */
class VerdictTest {
  private static Manifest manifest() throws GuardException {
    return Manifest.read(new File(System.getProperty("guard.bundle")));
  }

  @Test
  void hugeLogitsGiveZeroOrOneNotNaN() {
    assertEquals(1.0, Verdict.unsafeProbability(new float[] {-1e30f, 1e30f}, 1), 0);
    assertEquals(0.0, Verdict.unsafeProbability(new float[] {1e30f, -1e30f}, 1), 0);
    assertEquals(0.5, Verdict.unsafeProbability(new float[] {3f, 3f}, 1), 1e-15);
  }

  @Test
  void theHighestWindowDecidesAndTheThresholdItselfIsUnsafe() throws GuardException {
    Manifest m = manifest();
    float[][] windows = {{2f, -2f}, {0f, 0f}, {1f, -1f}};
    Verdict at = Verdict.of(windows, m, 0.5);
    assertEquals(0.5, at.score, 1e-15);
    assertTrue(at.unsafe);
    assertEquals("unsafe", at.label);
    assertEquals(3, at.windows);
    Verdict above = Verdict.of(windows, m, 0.5000001);
    assertFalse(above.unsafe);
    assertEquals("safe", above.label);
  }

  @Test
  void aNaNWindowMakesTheVerdictUnsafeAsInPython() throws GuardException {
    Manifest m = manifest();
    float nan = Float.NaN;
    float inf = Float.POSITIVE_INFINITY;
    for (float[][] windows : new float[][][] {{{nan, nan}}, {{nan, nan}, {0f, 0f}}, {{2f, -2f}, {inf, inf}}}) {
      Verdict v = Verdict.of(windows, m, 0.5);
      assertTrue(v.unsafe);
      assertTrue(Double.isNaN(v.score));
    }
  }

  @Test
  void aThresholdOutsideTheUnitIntervalAndNoWindowsAreRefused() throws GuardException {
    Manifest m = manifest();
    assertEquals(GuardException.Reason.INPUT,
        assertThrows(GuardException.class, () -> Verdict.of(new float[][] {{0f, 1f}}, m, 1.5)).reason());
    assertEquals(GuardException.Reason.INPUT,
        assertThrows(GuardException.class, () -> Verdict.of(new float[0][], m, 0.5)).reason());
  }
}
