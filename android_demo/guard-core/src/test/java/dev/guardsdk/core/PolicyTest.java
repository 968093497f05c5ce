package dev.guardsdk.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** Policy files as guard_sdk.policy reads them: the same fields, the same refusals. */
class PolicyTest {
  @Test
  void aPolicyFileReadsItsFields() throws GuardException {
    Policy p = Policy.parse("{\"allow\": [\"hate\"], \"thresholds\": {\"privacy\": 0.3}, \"uncategorised\": \"allow\"}");
    assertNull(p.enforce);
    assertTrue(p.allow.contains("hate") && p.thresholds.get("privacy") == 0.3);
    assertFalse(p.enforced("hate"));
    assertTrue(p.enforced("privacy"));
    assertEquals("allow", p.uncategorised);
  }

  @Test
  void aMalformedPolicyIsRefused() {
    for (String bad : new String[] {"{\"block\": []}", "{\"enforce\": \"hate\"}", "{\"thresholds\": {\"hate\": 2}}",
        "{\"uncategorised\": \"maybe\"}", "{\"enforce\": [\"hate\"], \"allow\": [\"hate\"]}", "[]"}) {
      GuardException e = assertThrows(GuardException.class, () -> Policy.parse(bad), bad);
      assertEquals(GuardException.Reason.POLICY, e.reason(), bad);
    }
  }
}
